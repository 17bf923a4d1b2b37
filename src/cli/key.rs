//! `snap key`: the age keys that encrypt what goes to remotes.

use super::Ctx;
use age::secrecy::ExposeSecret;
use anyhow::{Context, Result};
use snap::mirror::{crypt, state};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum Key {
    /// Make a new identity (private key) and add its recipient to the store.
    /// Keep the identity off this machine: it is what restores from remotes
    Generate {
        /// Write the identity to FILE (created, mode 0600) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the recipients new remote objects are encrypted to
    Show,
    /// Encrypt new objects to this recipient too (`age1…`)
    AddRecipient { recipient: String },
    /// Stop encrypting new objects to this recipient (key rotation:
    /// objects already sent still need its identity)
    RemoveRecipient { recipient: String },
}

pub fn run(ctx: &Ctx, what: Key) -> Result<u8> {
    // A new machine's first command may be `key generate`, as it may be `take`.
    let store = match what {
        Key::Generate { .. } | Key::AddRecipient { .. } => ctx.open_or_init()?,
        _ => ctx.open()?,
    };
    let mut list = state::recipients(&store)?;
    match what {
        Key::Generate { out } => {
            let id = age::x25519::Identity::generate();
            let public = id.to_public().to_string();
            let text = format!(
                "# created: {}\n# public key: {public}\n{}\n",
                chrono::Utc::now().to_rfc3339(),
                id.to_string().expose_secret()
            );
            match &out {
                Some(path) => {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    f.write_all(text.as_bytes())?;
                    f.sync_all()?;
                }
                None => print!("{text}"),
            }
            list.push(public.clone());
            state::set_recipients(&store, &list)?;
            eprintln!("recipient {public} added: new remote objects are encrypted to it");
            eprintln!("keep the identity off this machine: restores from the remote need it, and a server that holds only recipients cannot read old backups");
        }
        Key::Show => {
            if ctx.json {
                ctx.print_json(&list)?;
            } else if list.is_empty() {
                println!("no recipient: `snap key generate` makes one");
            } else {
                for r in &list {
                    println!("{r}");
                }
            }
        }
        Key::AddRecipient { recipient } => {
            crypt::parse_recipients(&recipient, "the argument")?;
            if !list.contains(&recipient) {
                list.push(recipient);
                state::set_recipients(&store, &list)?;
            }
        }
        Key::RemoveRecipient { recipient } => {
            if !list.contains(&recipient) {
                return Err(super::invalid(format!(
                    "{recipient} is not a recipient of this store"
                )));
            }
            if list.len() == 1 {
                return Err(super::invalid(
                    "it is the only recipient: add the new one first",
                ));
            }
            list.retain(|r| *r != recipient);
            state::set_recipients(&store, &list)?;
        }
    }
    Ok(0)
}
