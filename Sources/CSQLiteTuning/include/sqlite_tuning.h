#ifndef RECPIPE_SQLITE_TUNING_H
#define RECPIPE_SQLITE_TUNING_H

/// Turns off SQLite's memory statistics, whose global mutex every allocation takes.
/// Effective only before SQLite's first use; returns the SQLite status code.
int recpipe_sqlite_disable_memstatus(void);

/// The byte range of a database file that recpipe's writer lock covers: below SQLite's own
/// lock bytes (which start at 0x40000000), so it never conflicts with SQLite's locks.
#define RECPIPE_WRITER_LOCK_OFFSET 0x3FFF0000
#define RECPIPE_WRITER_LOCK_LENGTH 1

/// Takes (exclusive) or releases recpipe's writer lock on an open database file, as an
/// open-file-description lock (F_OFD_SETLK): it belongs to the descriptor, not the process,
/// so SQLite's own POSIX locks and connections of the same process never release it, and
/// the kernel releases it when the process ends, however it ends.
/// Returns 0 on success, else the errno (EAGAIN when another holder has it).
int recpipe_writer_lock(int fd, int exclusive);

/// Told of every table access a statement being compiled makes, on any connection of the
/// process: SQLite's authorizer action code (SQLITE_READ, SQLITE_INSERT, ...), its two
/// arguments (the table, and the column for reads and updates), the database ("main",
/// "temp" or an attached one's name) and its file ("" for temporary and in-memory ones).
/// Called on the compiling thread.
typedef void (*recpipe_access_recorder)(void *context, int action, const char *table, const char *column,
                                        const char *database, const char *file);

/// Sets (or, with NULL, clears) the process's access recorder. recpipe defines
/// sqlite3_set_authorizer itself, chaining the recorder in front of each connection's own
/// authorizer (see table_access.c).
void recpipe_set_access_recorder(recpipe_access_recorder function, void *context);

/// 1: the chaining sqlite3_set_authorizer is linked in.
int recpipe_authorizer_chained(void);

#endif
