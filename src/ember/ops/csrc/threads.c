/* One helper thread for kernels that split into two halves (the small-batch dense layer and
 * LSTM sequence, the direct convolutions, and through run_rows the large row-wise kernels:
 * cross-entropy, the attention softmax, layer norm).
 *
 * Why not OpenMP: its worker threads spin after every parallel region and fought OpenBLAS's
 * threads for this machine's two cores. This helper only ever takes "part 1" of a job whose
 * caller runs part 0, and it cannot slow a caller down: a part is *claimed* (an atomic
 * compare-and-swap on the job's sequence number) by whichever thread gets to it first, so when
 * the helper is asleep or late the caller simply runs both halves itself. After a job the
 * helper polls for up to SPIN_NS for the next one (batch-1 inference calls come every few
 * microseconds), then sleeps on a condition variable; the caller wakes it, without waiting.
 *
 * Sleeping soon matters as much as polling. After a multi-threaded BLAS call, OpenBLAS's worker
 * (0.3.27 on) spins on the other core for about 2^28 cycles without yielding it. A helper that
 * polls (or calls sched_yield(), which under the kernel's EEVDF scheduler only sends it to the
 * back) competes with that spinner for the core and rarely gets it; a helper that sleeps is
 * put straight on a core when woken. Measured on LeNet-5's training step, whose convolutions
 * are split here between GEMMs: 4.1 ms with a 200 us yielding poll (the helper got 2% of a
 * core), 3.4-3.5 ms with the 50 us pause-poll below, and the same batch-1 inference times. The
 * cost of polling at all is bounded by SPIN_NS: a poll that overlaps a GEMM slows its worker.
 *
 * The helper runs only C code (no Python objects, no GIL). After fork() the child has no helper
 * and starts a new one on first use. set_threads(1) switches it off. */
#include "native.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define SPIN_NS 50000L /* how long the helper waits for the next job before sleeping */
/* elements touched from which run_rows splits a job in two: the Transformer's row kernels
 * (0.5-3M) gain, while small ones would only wake the helper, whose polling afterwards slows
 * the GEMM that follows (splitting the LSTM cell, 4k units a step, took lstm-text's training
 * step from 9.7 to 13.3 ms; relu, memory-bound, gained nothing on LeNet-5) */
#define ROWS_SPLIT 262144.0
#define CLAIMED 1UL /* low bit of `claim`: part 1 of job (claim & ~1) is taken */

static pthread_mutex_t use_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond = PTHREAD_COND_INITIALIZER;
static atomic_ulong claim;  /* the current job's sequence number (even), | CLAIMED once taken */
static atomic_ulong done;   /* sequence number of the last part 1 the helper finished */
static atomic_int sleeping; /* the helper waits on sleep_cond */
static int started;         /* a helper thread exists (in this process) */
static pthread_t helper;    /* the helper thread */
static int avoided = -1;    /* the caller's CPU, which the helper's affinity leaves out */
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
    long t0 = now_ns(); /* when the helper last finished a job or woke up */
    for (;;) {
        unsigned long c = atomic_load(&claim);
        if ((c & ~CLAIMED) != last) { /* a new job: take its part 1 unless the caller has */
            last = c & ~CLAIMED;
            unsigned long expect = c;
            if (!(c & CLAIMED) && atomic_compare_exchange_strong(&claim, &expect, c | CLAIMED)) {
                job_fn(job_arg, 1);
                atomic_store(&done, c);
            }
            t0 = now_ns();
            continue;
        }
        if (now_ns() - t0 > SPIN_NS) { /* idle for long: sleep until the next job */
            pthread_mutex_lock(&sleep_lock);
            atomic_store(&sleeping, 1);
            while ((atomic_load(&claim) & ~CLAIMED) == last)
                pthread_cond_wait(&sleep_cond, &sleep_lock);
            atomic_store(&sleeping, 0);
            pthread_mutex_unlock(&sleep_lock);
            t0 = now_ns();
            continue;
        }
        pause_cpu();
    }
    return NULL;
}

static void after_fork_child(void)
{
    started = 0;
    avoided = -1;
    /* a job in flight belonged to a thread the child does not have: mark it taken */
    atomic_store(&claim, atomic_load(&claim) | CLAIMED);
    pthread_mutex_init(&use_lock, NULL);
    pthread_mutex_init(&sleep_lock, NULL);
    pthread_cond_init(&sleep_cond, NULL);
    atomic_store(&sleeping, 0);
}

/* Keep the helper off the CPU the caller runs on. Woken by the caller, the helper is put on
 * the caller's CPU (the scheduler's wake-affine choice) about half the time, in a process,
 * where it waits behind the caller, which then runs both halves itself: LeNet-5's training step
 * took 4.4-4.7 ms in such processes against 3.5-3.7 ms in the others. One affinity call each
 * time the caller's CPU changes (rarely); none where the caller may use a single CPU. */
static void keep_off_caller_cpu(void)
{
#ifdef __linux__
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu == avoided)
        return;
    avoided = cpu;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2 ||
        !CPU_ISSET(cpu, &set))
        return;
    CPU_CLR(cpu, &set);
    pthread_setaffinity_np(helper, sizeof set, &set);
#endif
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
    started = pthread_create(&helper, &attr, helper_main, NULL) == 0;
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
    keep_off_caller_cpu();
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

/* fn(arg, r0, r1, half) over rows [0, rows) as two halves (half 0 and 1) on two threads when
 * `work` (about the elements touched) is large enough to pay for it, else in one call (half 0);
 * 0 if a half returned 0 */
typedef struct {
    int (*fn)(void *, Py_ssize_t, Py_ssize_t, int);
    void *arg;
    Py_ssize_t rows;
    int ok[2];
} RowsJob;

static void rows_half(void *arg, int half)
{
    RowsJob *j = arg;
    Py_ssize_t mid = j->rows / 2;
    j->ok[half] = half ? j->fn(j->arg, mid, j->rows, 1) : j->fn(j->arg, 0, mid, 0);
}

int run_rows(int (*fn)(void *, Py_ssize_t, Py_ssize_t, int), void *arg, Py_ssize_t rows,
             double work)
{
    if (rows < 2 || work < ROWS_SPLIT)
        return fn(arg, 0, rows, 0);
    RowsJob job = {fn, arg, rows, {1, 1}};
    run_halves(rows_half, &job);
    return job.ok[0] && job.ok[1];
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
