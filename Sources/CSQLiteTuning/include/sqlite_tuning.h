#ifndef RECPIPE_SQLITE_TUNING_H
#define RECPIPE_SQLITE_TUNING_H

/// Turns off SQLite's memory statistics, whose global mutex every allocation takes.
/// Effective only before SQLite's first use; returns the SQLite status code.
int recpipe_sqlite_disable_memstatus(void);

#endif
