/* SQLite's snapshot functions, reached through weak references so that
 * snap links against any SQLite build: they exist only when SQLite was
 * compiled with SQLITE_ENABLE_SNAPSHOT (this project's .cargo/config.toml
 * asks for it; a crate that depends on snap does not inherit that file).
 * Without them, snap_snapshot_available() is 0 and the capture checks a
 * WAL database on the copying connection instead (src/source/streamed.rs). */
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_snapshot sqlite3_snapshot;

extern int sqlite3_snapshot_get(sqlite3 *, const char *, sqlite3_snapshot **) __attribute__((weak));
extern int sqlite3_snapshot_open(sqlite3 *, const char *, sqlite3_snapshot *) __attribute__((weak));
extern void sqlite3_snapshot_free(sqlite3_snapshot *) __attribute__((weak));

int snap_snapshot_available(void) {
    return sqlite3_snapshot_get != 0 && sqlite3_snapshot_open != 0 && sqlite3_snapshot_free != 0;
}

int snap_snapshot_get(sqlite3 *db, const char *schema, sqlite3_snapshot **out) {
    return sqlite3_snapshot_get(db, schema, out);
}

int snap_snapshot_open(sqlite3 *db, const char *schema, sqlite3_snapshot *snap) {
    return sqlite3_snapshot_open(db, schema, snap);
}

void snap_snapshot_free(sqlite3_snapshot *snap) {
    sqlite3_snapshot_free(snap);
}
