//! Progress on the terminal: the library reports events, this draws them
//! (indicatif bars with totals, rates and ETA on a terminal; nothing
//! otherwise), says when a command waits for the store lock, and with -v
//! names each phase.

use super::Ctx;
use snap::{Event, Reporter};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn reporter(ctx: &Ctx) -> Reporter {
    let draw = !ctx.json && !ctx.quiet && std::io::stderr().is_terminal();
    let (quiet, verbose) = (ctx.quiet, ctx.verbose);
    let bar: Arc<Mutex<Option<indicatif::ProgressBar>>> = Arc::default();
    let phase: Arc<Mutex<Option<(String, std::time::Instant)>>> = Arc::default();
    Reporter::new(move |e| {
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        let mut current = phase.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            Event::Waiting { holder } if !quiet => {
                eprintln!("snap: waiting for the store lock: {holder}");
            }
            Event::Start {
                phase,
                total,
                bytes,
            } => {
                if verbose {
                    let size = total.map(|t| {
                        if bytes {
                            super::bytes(t)
                        } else {
                            t.to_string()
                        }
                    });
                    eprintln!(
                        "snap: {phase}{}",
                        size.map(|s| format!(" ({s})")).unwrap_or_default()
                    );
                    *current = Some((phase.clone(), std::time::Instant::now()));
                }
                if draw {
                    *bar = Some(new_bar(&phase, total, bytes));
                }
            }
            Event::Advance(n) => {
                if let Some(b) = bar.as_ref() {
                    b.inc(n);
                }
            }
            Event::Finish => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                if let Some((name, start)) = current.take() {
                    eprintln!(
                        "snap: {name}: done in {:.2} s",
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            Event::Note(text) if verbose => match bar.as_ref() {
                Some(b) => b.println(format!("snap: {text}")),
                None => eprintln!("snap: {text}"),
            },
            _ => {}
        }
    })
}

fn new_bar(phase: &str, total: Option<u64>, bytes: bool) -> indicatif::ProgressBar {
    let (bar, template) = match (total, bytes) {
        (Some(n), true) => (
            indicatif::ProgressBar::new(n),
            "{prefix} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ),
        (Some(n), false) => (
            indicatif::ProgressBar::new(n),
            "{prefix} {bar:30} {pos}/{len} {per_sec} ETA {eta}",
        ),
        (None, _) => (
            indicatif::ProgressBar::new_spinner(),
            "{prefix} {spinner} {binary_bytes} ({elapsed})",
        ),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("template"));
    bar.set_prefix(phase.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
