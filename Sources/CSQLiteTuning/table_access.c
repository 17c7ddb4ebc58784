#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sqlite3.h>
#include "sqlite_tuning.h"

// Table access recording, for the tests that hold each stage to the tables it declares.
//
// SQLite allows one authorizer per connection, and GRDB installs its own (it learns from it
// what each statement reads and changes). This definition of sqlite3_set_authorizer takes the
// place of SQLite's for the whole process: it installs a callback that reports the access to
// the recorder, when one is set, and then answers with the authorizer the caller gave (or
// allows, when none). Without a recorder it only forwards.

typedef int (*authorizer_fn)(void *, int, const char *, const char *, const char *, const char *);

struct chained {
    sqlite3 *db;
    authorizer_fn original;
    void *context;
};

static _Atomic(recpipe_access_recorder) recorder = NULL;
static void *_Atomic recorder_context = NULL;

void recpipe_set_access_recorder(recpipe_access_recorder function, void *context) {
    atomic_store(&recorder_context, context);
    atomic_store(&recorder, function);
}

static int chained_authorizer(void *pointer, int action, const char *a, const char *b, const char *database,
                              const char *trigger) {
    struct chained *chain = pointer;
    recpipe_access_recorder record = atomic_load(&recorder);
    if (record) {
        const char *file = sqlite3_db_filename(chain->db, database ? database : "main");
        record(atomic_load(&recorder_context), action, a, b, database, file ? file : "");
    }
    return chain->original ? chain->original(chain->context, action, a, b, database, trigger) : SQLITE_OK;
}

int sqlite3_set_authorizer(sqlite3 *db, authorizer_fn function, void *context) {
    static int (*real)(sqlite3 *, authorizer_fn, void *) = NULL;
    if (!real) real = (int (*)(sqlite3 *, authorizer_fn, void *))dlsym(RTLD_NEXT, "sqlite3_set_authorizer");
    if (!real) return SQLITE_ERROR;
    // One small allocation per connection (GRDB and recpipe set the authorizer once, when
    // they open it); kept for the connection's life.
    struct chained *chain = malloc(sizeof *chain);
    if (!chain) return SQLITE_NOMEM;
    chain->db = db;
    chain->original = function;
    chain->context = context;
    return real(db, chained_authorizer, chain);
}

int recpipe_authorizer_chained(void) {
    return 1;
}
