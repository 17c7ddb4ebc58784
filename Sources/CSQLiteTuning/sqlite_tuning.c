#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sqlite3.h>
#include "sqlite_tuning.h"

// sqlite3_config is variadic, so Swift cannot call it directly.
int recpipe_sqlite_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static struct flock writer_range(short type) {
    struct flock range;
    memset(&range, 0, sizeof range);  // l_pid must be 0 for OFD locks
    range.l_type = type;
    range.l_whence = SEEK_SET;
    range.l_start = RECPIPE_WRITER_LOCK_OFFSET;
    range.l_len = RECPIPE_WRITER_LOCK_LENGTH;
    return range;
}

// fcntl is variadic, so Swift cannot call it with a struct pointer portably.
int recpipe_writer_lock(int fd, int exclusive) {
    struct flock range = writer_range(exclusive ? F_WRLCK : F_UNLCK);
    if (fcntl(fd, F_OFD_SETLK, &range) == 0) return 0;
    return errno == EACCES ? EAGAIN : errno;
}
