/* SPDX-License-Identifier: MIT */
/*
 * The wake-up protocol of lib/src/notify.cpp and lib/src/iteration.cpp, in
 * Promela, for an exhaustive check with spin that no wake-up is lost: after
 * a notify() the loop never stays blocked with work pending.
 *
 * Processes: the loop (the home thread, running blocking poll() iterations
 * or embedded prepare/wait/check/dispatch iterations as the GSource does;
 * its own code may schedule bottom halves) and NOTIFIERS other threads,
 * each scheduling NOTIFIES bottom halves (push, then notify()).
 *
 * Memory ordering. Spin explores sequentially consistent interleavings:
 * every statement is atomic and seen by all processes at once. The code is
 * not sequentially consistent, but the model may assume so where the code
 * forbids the reorderings that matter:
 *   - notify():  notified_.store(true, release); atomic_thread_fence(seq_cst);
 *                notify_me_.load(relaxed)
 *   - the loop:  notify_me_.store(old + 2, relaxed); atomic_thread_fence(
 *                seq_cst); notified_.load(relaxed) (announce_blocking_wait()
 *                and the notification_pending() check in poll_impl())
 *   This is the store-buffering pattern. With a seq_cst fence between the
 *   store and the load on both sides, C++20 [atomics.fences] (the fences
 *   are ordered in the single total order S) forbids the outcome where both
 *   loads read the old values; without either fence x86-TSO allows it (a
 *   store waits in the store buffer while the later load runs).
 *   - the bottom-half push (a release compare-and-swap) comes before the
 *     release store of notified_, and accept_notify() clears notified_
 *     with a seq_cst fence before run() reads the queue: a loop that
 *     consumed a notification sees the work published before it.
 *   - withdraw_announcement() is a release store; a notifier reading a
 *     stale "announced" only writes the eventfd needlessly (a spurious
 *     wake-up), which the model also allows, since it is harmless.
 * The mutants re-introduce exactly the store-buffer reordering a missing
 * fence would permit: the delayed store becomes visible only after the
 * same thread's later load.
 *
 * Variants (spin -D...):
 *   MUTANT_NO_NOTIFY_FENCE  notify() without its fence
 *   MUTANT_NO_WAIT_FENCE    the loop without the fence after announcing
 *   MUTANT_NO_RECHECK       the loop blocks without re-checking notified_
 *   MUTANT_FAST_PATH_ALWAYS notify() from the home thread takes the
 *                           home-thread-only path even while a wait is
 *                           announced (embedding: code between prepare and
 *                           the outer wait)
 * Each must produce an error; the model as written must verify with none.
 *
 * Property: no_lost_wakeup, [](work > 0 -> <>(work == 0)). The loop's wait
 * is a valid end state (it may sleep forever when nothing is pending), so
 * a lost wake-up shows as a run that ends with the loop asleep and work
 * queued: spin treats the final state as repeating forever, an acceptance
 * cycle for the never claim. Run with ./pan -a -f.
 */

#define NOTIFIERS 2
#define NOTIFIES 2
/* Bottom halves the loop's own callbacks schedule (home-thread notify). */
#define HOME_SCHEDULES 2
/* Busy-poll rounds before the loop gives up polling and announces. */
#define POLL_ROUNDS 2

byte work = 0;               /* bottom halves queued, not yet run */
bool notified = false;       /* notified_ */
bool notified_locally = false;
byte notify_me = 0;          /* notify_me_: +2 per announced native wait */
bool efd = false;            /* the eventfd is readable */

ltl no_lost_wakeup { [] ((work > 0) -> <> (work == 0)) }

/* notify() from a thread that is not the home thread, or from the home
 * thread while a wait is announced: publish, fence, then look. */
inline notify_slow() {
#ifdef MUTANT_NO_NOTIFY_FENCE
  if
  :: notified = true; announced_seen = notify_me
  :: announced_seen = notify_me; notified = true
  fi;
#else
  notified = true;
  announced_seen = notify_me;
#endif
  if
  :: announced_seen != 0 -> efd = true   /* notifier_.set() */
  :: else -> skip
  fi
}

proctype Notifier() {
  byte n = 0;
  byte announced_seen;
  do
  :: n < NOTIFIES ->
     work++;        /* the push onto the bottom-half queue */
     notify_slow();
     n++
  :: else -> break
  od
}

/* notify() from the home thread: without an announced wait nobody can be
 * blocked, so a home-thread flag is enough; with one (the embedding loop
 * between prepare and check) it must take the slow path. */
inline notify_home() {
#ifdef MUTANT_FAST_PATH_ALWAYS
  notified_locally = true;
#else
  if
  :: notify_me == 0 -> notified_locally = true
  :: else -> notify_slow()
  fi
#endif
}

/* A callback or other home-thread code scheduling a bottom half, or not. */
inline home_schedules() {
  if
  :: home < HOME_SCHEDULES -> home++; work++; notify_home()
  :: skip
  fi
}

/* accept_notify(), then the dispatch: run() takes the queued bottom halves
 * (their callbacks may schedule more, which wait for the next round), and
 * the context's own handler clears the eventfd if the wait reported it. */
inline accept_and_dispatch() {
  notified_locally = false;
  if
  :: notified -> notified = false
  :: else -> skip
  fi;
  work = 0;
  home_schedules();
  if
  :: saw_efd -> efd = false   /* test_and_clear() */
  :: else -> skip
  fi
}

/* Context::poll(true) */
inline native_iteration() {
  /* compute_timeout(): 0 when a bottom half is queued. It reads the
   * queue before announcing; whatever changes it afterwards notifies. */
  must_wait = (work == 0);

  /* Busy polling (when enabled): without announcing, the context's own
   * notifier is polled, and its poll callback reads the flags. */
  rounds = 0;
  do
  :: must_wait && rounds < POLL_ROUNDS ->
     if
     :: notified || notified_locally -> must_wait = false
     :: else -> rounds++
     fi
  :: must_wait && rounds < POLL_ROUNDS -> break   /* budget spent */
  :: else -> break
  od;

  /* announce_blocking_wait(), fence, notification_pending() */
  if
  :: must_wait ->
#ifdef MUTANT_NO_WAIT_FENCE
     if
     :: notify_me = notify_me + 2; pending = (notified || notified_locally)
     :: pending = (notified || notified_locally); notify_me = notify_me + 2
     fi;
#else
     notify_me = notify_me + 2;
     pending = (notified || notified_locally);
#endif
#ifndef MUTANT_NO_RECHECK
     if
     :: pending -> must_wait = false
     :: else -> skip
     fi;
#endif
     /* the wait in the fd monitor; asleep until the eventfd fires */
     if
     :: must_wait ->
end_asleep:
        efd;
        saw_efd = true
     :: else ->
        saw_efd = efd   /* a zero-timeout wait */
     fi;
     notify_me = notify_me - 2   /* withdraw_announcement() */
  :: else ->
     /* nothing to wait for: a zero-timeout wait, or none at all */
     if
     :: saw_efd = efd
     :: saw_efd = false
     fi
  fi;
  accept_and_dispatch()
}

/* One iteration of an outer loop (the GSource under GLib, or a bare poll()
 * loop) through embed_prepare() / outer wait / embed_check() /
 * embed_dispatch(). */
inline embedded_iteration() {
  rounds = 0;
  do
  :: /* embed_prepare(): with a notification pending already, return 0
      * without announcing (the outer loop will not block); else announce
      * (one bit), fence, then look */
     if
     :: (notified || notified_locally) -> must_wait = false
     :: else ->
        notify_me = notify_me | 1;
        must_wait = !(notified || notified_locally) && work == 0
     fi;
     /* Home-thread code may run before the outer wait: other sources'
      * prepare, the outer loop's own code. */
     home_schedules();
     /* GLib may prepare again without check (a source of higher priority
      * was ready); a few times, not for ever, or nothing would be due to
      * run and the property would fail for GLib's starvation, not ours. */
     if
     :: break
     :: rounds < POLL_ROUNDS -> rounds++
     fi
  od;
  if
  :: must_wait ->
end_asleep_outer:
     efd;
     saw_efd = true
  :: else ->
     saw_efd = efd
  fi;
  /* embed_check(): withdraw the bit, accept; dispatch if due */
  notify_me = notify_me & 254;
  accept_and_dispatch()
}

active proctype Loop() {
  bool must_wait;      /* the computed timeout is not 0 */
  bool pending;        /* notification_pending() after announcing */
  bool saw_efd;        /* the wait reported the eventfd readable */
  byte rounds;         /* busy-poll rounds, or repeated prepares */
  byte home = 0;
  byte announced_seen;

  do
  :: native_iteration(); assert(notify_me == 0)
  :: embedded_iteration(); assert(notify_me == 0)
  od
}

init {
  byte i = 0;
  atomic {
    do
    :: i < NOTIFIERS -> run Notifier(); i++
    :: else -> break
    od
  }
}
