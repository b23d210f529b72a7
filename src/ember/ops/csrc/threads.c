/* One helper thread for kernels that split into two halves (the small-batch dense layer).
 *
 * Why not OpenMP: its worker threads spin after every parallel region and fought OpenBLAS's
 * threads for this machine's two cores. This helper only ever takes "part 1" of a job whose
 * caller runs part 0, and it cannot slow a caller down: a part is *claimed* (an atomic
 * compare-and-swap on the job's sequence number) by whichever thread gets to it first, so when
 * the helper is asleep or late the caller simply runs both halves itself. After a job the
 * helper polls for up to SPIN_NS for the next one (batch-1 inference calls come every few
 * microseconds), calling sched_yield() between looks so that any other runnable thread (an
 * OpenBLAS worker) gets the core at once, then sleeps on a condition variable; the caller
 * wakes it, without waiting.
 *
 * The helper only finds a free core when OpenBLAS is quiet: after a multi-threaded BLAS call,
 * OpenBLAS's worker keeps polling on the other core for a long while, and the helper rarely
 * gets to claim a part (measured: an LSTM sequence after a GEMM ran at single-thread speed).
 * So the split pays in batch-1 inference of dense layers and LSTMs, and splitting the training
 * kernels (LSTM cells, optimizer updates, im2col) the same way was tried and dropped: the
 * training steps, full of GEMMs, did not get faster.
 *
 * The helper runs only C code (no Python objects, no GIL). After fork() the child has no helper
 * and starts a new one on first use. set_threads(1) switches it off. */
#include "native.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define SPIN_NS 200000L /* how long the helper waits for the next job before sleeping */
#define CLAIMED 1UL     /* low bit of `claim`: part 1 of job (claim & ~1) is taken */

static pthread_mutex_t use_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond = PTHREAD_COND_INITIALIZER;
static atomic_ulong claim;  /* the current job's sequence number (even), | CLAIMED once taken */
static atomic_ulong done;   /* sequence number of the last part 1 the helper finished */
static atomic_int sleeping; /* the helper waits on sleep_cond */
static int started;         /* a helper thread exists (in this process) */
static int wanted = 2;      /* threads to use: 1 = no helper */
static unsigned long seq;   /* last job number given out (guarded by use_lock) */
static void (*job_fn)(void *, int);
static void *job_arg;

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pause_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *helper_main(void *unused)
{
    (void)unused;
    unsigned long last = atomic_load(&claim) & ~CLAIMED; /* the last job looked at */
    long t0 = 0;
    int spins = 0;
    for (;;) {
        unsigned long c = atomic_load(&claim);
        if ((c & ~CLAIMED) != last) { /* a new job: take its part 1 unless the caller has */
            last = c & ~CLAIMED;
            unsigned long expect = c;
            if (!(c & CLAIMED) && atomic_compare_exchange_strong(&claim, &expect, c | CLAIMED)) {
                job_fn(job_arg, 1);
                atomic_store(&done, c);
            }
            t0 = 0;
            spins = 0;
            continue;
        }
        if (++spins == 64) { /* idle: look at the clock now and then */
            spins = 0;
            long t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS) { /* idle for long: sleep until the next job */
                pthread_mutex_lock(&sleep_lock);
                atomic_store(&sleeping, 1);
                while ((atomic_load(&claim) & ~CLAIMED) == last)
                    pthread_cond_wait(&sleep_cond, &sleep_lock);
                atomic_store(&sleeping, 0);
                pthread_mutex_unlock(&sleep_lock);
                t0 = 0;
                continue;
            }
        }
        sched_yield(); /* give the core to any other runnable thread (OpenBLAS's workers) */
    }
    return NULL;
}

static void after_fork_child(void)
{
    started = 0;
    /* a job in flight belonged to a thread the child does not have: mark it taken */
    atomic_store(&claim, atomic_load(&claim) | CLAIMED);
    pthread_mutex_init(&use_lock, NULL);
    pthread_mutex_init(&sleep_lock, NULL);
    pthread_cond_init(&sleep_cond, NULL);
    atomic_store(&sleeping, 0);
}

/* Start the helper if there is none yet; 0 if it cannot be started. */
static int ensure_helper(void)
{
    static int atfork_done;
    if (started)
        return 1;
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, after_fork_child);
        atfork_done = 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    started = pthread_create(&t, &attr, helper_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    return started;
}

void run_halves(void (*fn)(void *, int), void *arg)
{
    if (wanted < 2 || pthread_mutex_trylock(&use_lock) != 0) { /* off, or busy: alone */
        fn(arg, 0);
        fn(arg, 1);
        return;
    }
    if (!ensure_helper()) {
        pthread_mutex_unlock(&use_lock);
        fn(arg, 0);
        fn(arg, 1);
        return;
    }
    job_fn = fn;
    job_arg = arg;
    seq += 2;
    unsigned long s = seq;
    atomic_store(&claim, s); /* publishes job_fn and job_arg */
    if (atomic_load(&sleeping)) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_signal(&sleep_cond);
        pthread_mutex_unlock(&sleep_lock);
    }
    fn(arg, 0);
    unsigned long expect = s;
    if (atomic_compare_exchange_strong(&claim, &expect, s | CLAIMED))
        fn(arg, 1); /* the helper had not started on it */
    else
        while (atomic_load(&done) != s)
            pause_cpu();
    pthread_mutex_unlock(&use_lock);
}

PyObject *py_set_threads(PyObject *self, PyObject *args)
{
    int n;
    if (!PyArg_ParseTuple(args, "i", &n))
        return NULL;
    if (n < 1) {
        PyErr_Format(PyExc_ValueError, "set_threads: expected a positive count, got %d", n);
        return NULL;
    }
    wanted = n;
    Py_RETURN_NONE;
}

PyObject *py_get_threads(PyObject *self, PyObject *args)
{
    return PyLong_FromLong(wanted < 2 ? 1 : 2);
}
