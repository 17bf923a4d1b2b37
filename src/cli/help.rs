//! Text that `--help` and the man pages end with.

/// The man page's (and `--help`'s) last section: exit codes and examples.
pub const EXIT_CODES_AND_EXAMPLES: &str = "\
EXIT STATUS
  0  success (also \"nothing to back up\" with --allow-missing)
  1  an I/O, index or SQLite failure; a job that failed
  2  bad input: missing path, unknown id, existing target, open database, bad config;
     nothing was changed
  3  corrupt data detected (restore stopped, verify or mirror found problems)
  4  the store is busy: another snap process held it longer than --lock-wait
  5  the snapshot was recorded but a database image failed its check
  6  a remote failed (unreachable); mirror resumes where it stopped when run again
  7  status: a job is overdue or failing, or an in-place restore did not finish
  8  a remote's credential is missing or was refused (it needs the permission named)
  130 interrupted (SIGINT, SIGTERM): stopped at a safe point; the message says what is left

EXAMPLES
  snap take ./data                                   snapshot a data directory
  snap take app.db --tag pre-migration --allow-missing   a migration hook
  snap list                                          what is there
  snap diff latest:./app.db --live                   what changed since, down to rows
  snap recover latest:./app.db --db ./app.db --dry-run   the lost rows, as SQL
  snap restore latest:./data --in-place              roll back (undoable)
  snap verify --read-data                            re-read and re-check everything
  snap mirror --remote gs://bucket/prefix            an encrypted off-site copy

Ubuntu's package manager is also called snap; this one says \"(snapdb)\" in --version.";
