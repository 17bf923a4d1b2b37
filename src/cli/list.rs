use super::{bytes, Ctx};
use anyhow::Result;
use snap::format::tree::{Node, NodeKind};

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    filter: super::Filter,
    /// List the snapshots on this remote instead (no local store needed)
    #[arg(long)]
    remote: Option<String>,
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// Snapshot id, unique prefix, `latest` or `latest:PATH`
    id: String,
    /// Only this path inside the snapshot (`root/sub/dir`, or the path as it was taken)
    path: Option<String>,
    /// Read the snapshot from this remote (no local store needed)
    #[arg(long)]
    remote: Option<String>,
    #[command(flatten)]
    filter: super::HostTag,
}

pub fn list(ctx: &Ctx, args: ListArgs) -> Result<u8> {
    let all = match &args.remote {
        Some(r) => {
            let (remote, opened) = super::mirror::opened(ctx, r)?;
            snap::mirror::remote_snapshots(&remote, &opened)?
        }
        None => {
            let (all, bad) = ctx.open()?.snapshots_checked()?;
            for b in bad {
                eprintln!("snap: warning: {b}; it is left out (run `snap verify`)");
            }
            all
        }
    };
    let sel = args.filter.selection()?;
    let snaps: Vec<_> = all.into_iter().filter(|(_, s)| sel.matches(s)).collect();
    if ctx.json {
        let rows: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(), "time": s.time, "host": s.host, "tags": s.tags,
                    "paths": s.paths, "size": s.stats.size, "added": s.stats.added,
                    "stats": s.stats, "databases": s.databases, "skipped": s.skipped,
                    "parent": s.parent.map(|p| p.to_hex()), "ok": s.checks_ok(),
                })
            })
            .collect();
        ctx.print_json(&rows)?;
        return Ok(0);
    }
    println!(
        "{:<12} {:<25} {:<12} {:>10} {:>10}  {:<16} paths",
        "id", "time", "host", "size", "added", "tags"
    );
    for (id, s) in &snaps {
        println!(
            "{:<12} {:<25} {:<12} {:>10} {:>10}  {:<16} {}{}",
            &id.to_hex()[..12],
            super::time(&s.time),
            s.host,
            bytes(s.stats.size),
            bytes(s.stats.added),
            s.tags.join(","),
            s.paths.join(" "),
            if s.checks_ok() {
                ""
            } else {
                "  [DATABASE CHECK FAILED]"
            }
        );
    }
    println!("{}", super::count(snaps.len() as u64, "snapshot"));
    Ok(0)
}

pub fn ls(ctx: &Ctx, args: LsArgs) -> Result<u8> {
    let (store, _view) = super::mirror::store_or_view(ctx, args.remote.as_deref())?;
    let id = store.resolve_in(&args.id, &args.filter.selection())?;
    let snapshot = store.load_snapshot(&id)?;
    let reader = store.reading("ls", ctx.lock_wait)?;
    let top = reader.tree(&snapshot.tree)?;
    let (prefix, nodes) = match &args.path {
        None => (String::new(), top.nodes),
        Some(p) => {
            let p = snapshot.inner_path(p)?;
            let node = snap::restore::lookup(&reader, &top, &p)?;
            let p = p.trim_matches('/');
            let parent = p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
            (parent, vec![node])
        }
    };
    let mut rows = Vec::new();
    reader.walk(
        &prefix,
        nodes,
        |path, node| {
            rows.push(row(path, node));
            Ok(true)
        },
        |_, e| Err(e),
    )?;
    if ctx.json {
        ctx.print_json(&rows)?;
    } else {
        for r in &rows {
            println!(
                "{} {:o} {:>10} {} {}",
                r["type"].as_str().unwrap_or(""),
                r["mode"].as_u64().unwrap_or(0) & 0o7777,
                r["size"],
                r["mtime"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or("")
            );
            if let Some(db) = r.get("database") {
                println!("    {}", database_line(db));
            }
        }
    }
    Ok(0)
}

fn row(path: &str, node: &Node) -> serde_json::Value {
    let mtime = chrono::DateTime::from_timestamp_nanos(node.mtime)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut row =
        serde_json::json!({"path": path, "mode": node.mode, "size": node.size, "mtime": mtime});
    match &node.kind {
        NodeKind::File { .. } => row["type"] = "file".into(),
        NodeKind::Symlink { target } => {
            row["type"] = "link".into();
            row["target"] = String::from_utf8_lossy(target).into();
        }
        NodeKind::Database(db) | NodeKind::ListedDatabase(db) => {
            row["type"] = "db".into();
            row["database"] = serde_json::json!({
                "page_size": db.page_size, "page_count": db.page_count, "journal_mode": db.journal_mode,
                "sqlite_version": db.sqlite_version, "check": db.check, "check_kind": db.check_kind, "tables": db.tables,
            });
        }
        NodeKind::Dir { .. } => row["type"] = "dir".into(),
    }
    row
}

/// A database's check results on one line: "245 pages of 4096 B, wal mode,
/// quick_check ok; tables: candidates 35, evaluations 108".
fn database_line(db: &serde_json::Value) -> String {
    let tables: Vec<String> = db["tables"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| format!("{} {}", t[0].as_str().unwrap_or("?"), t[1]))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "database: {} pages of {} B, {} mode, SQLite {}, {} {}; tables: {}",
        db["page_count"],
        db["page_size"],
        db["journal_mode"].as_str().unwrap_or("?"),
        db["sqlite_version"].as_str().unwrap_or("?"),
        db["check_kind"].as_str().unwrap_or("check"),
        db["check"].as_str().unwrap_or("?"),
        if tables.is_empty() {
            "none".into()
        } else {
            tables.join(", ")
        }
    )
}
