//go:build linux

package kvstore

import (
	"syscall"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// How an event loop holds back the responses that wait for the commit
// log (see Session.need), and, under SyncAlways, who syncs it.
//
// A loop whose clients read synced data leaves the syncing to the log's
// writer goroutine: the connections whose responses wait are parked, the
// loop serves the others, and the writer wakes it once their commits are
// synced. A loop whose clients mostly write would only be woken for each
// request that arrives while the writer syncs, and then for the sync:
// there, as Redis's loop does under appendfsync always, the loop writes
// and syncs the log itself at the end of its round (wal.Log.Sync), then
// answers everybody; the requests that come meanwhile make the next
// round, and the next fsync covers them all. loopSyncing chooses
// between the two from what the loop's last rounds did.

const (
	// selfSyncEnter and selfSyncLeave are the shares (in 1/256) of a
	// loop's answered connections that had to wait for the log, averaged
	// over its recent rounds, above which the loop starts syncing the log
	// itself and below which it goes back to the writer goroutine.
	selfSyncEnter = 160 // 62.5%
	selfSyncLeave = 96  // 37.5%
)

// loopSyncing is a loop's choice of who syncs the log under SyncAlways.
type loopSyncing struct {
	parked   int  // connections parked for the log this round (see flush)
	answered int  // connections answered without waiting this round
	share    int  // parked / (parked + answered), in 1/256, averaged
	self     bool // the loop syncs the log itself
	settling bool // parked output is being sent (not counted)
}

// endRound folds the round's counts into the average (each round
// weighing 1/8) and switches who syncs when the average crosses
// selfSyncEnter or selfSyncLeave.
func (p *loopSyncing) endRound(log *wal.Log) {
	if n := p.parked + p.answered; n > 0 {
		p.share += (p.parked*256/n - p.share) / 8
	}
	p.parked, p.answered = 0, 0
	self := p.share > selfSyncEnter || p.self && p.share >= selfSyncLeave
	if self != p.self {
		p.self = self
		log.SyncsItself(self)
	}
}

// stop hands the syncing back to the writer when the loop exits.
func (p *loopSyncing) stop(store *Store) {
	if p.self {
		p.self = false
		store.dur.log.SyncsItself(false)
	}
}

// settleDurable sends the output that was waiting for the log and may go
// now: each parked connection (see flush) waits for the one commit its
// responses depend on (Session.need). Under the modes other than
// SyncAlways, the loop writes the log itself, once for all the round's
// connections (wal.Log.Write, as Redis writes its AOF buffer before it
// answers), and then serves them all. Under SyncAlways, those whose
// commit is synced are served again to write; for the others, a loop
// that syncs the log itself (loopSyncing) syncs it now, once for them
// all, and serves them; otherwise they stay parked while the loop serves
// everybody else, and the log's writer wakes the loop (the Waiter
// l.durWaiter) once the oldest commit still waited for is synced. If the
// log failed, or closed short of a connection's commit, that connection
// is closed with nothing of its parked output sent.
func (l *eventLoop) settleDurable() {
	store := l.srv.store
	always := store.syncAlways()
	if always {
		l.durSync.endRound(store.dur.log)
	}
	if len(l.durWait) == 0 {
		return
	}
	log := store.dur.log
	if always && l.durWaiter == nil {
		l.durWaiter = log.NewWaiter(l.wake)
	}
	for len(l.durWait) > 0 {
		if !always {
			var newest uint64
			for _, c := range l.durWait {
				newest = max(newest, c.sess.need)
			}
			_ = log.Write(newest) // a failure is each connection's, below
		}
		var oldest, newest uint64
		go1 := l.durGo[:0]
		keep := l.durWait[:0]
		for _, c := range l.durWait {
			if c.released {
				c.durWait = false
				continue
			}
			ok, err := store.loggedOrErr(c.sess.need)
			switch {
			case ok:
				go1 = append(go1, c)
			case err != nil:
				c.durWait = false
				c.out = nil
				l.release(c, false, "log failed: "+err.Error())
			default:
				keep = append(keep, c)
				if oldest == 0 || c.sess.need < oldest {
					oldest = c.sess.need
				}
				newest = max(newest, c.sess.need)
			}
		}
		clear(l.durWait[len(keep):])
		l.durWait = keep
		l.durSync.settling = true
		for _, c := range go1 {
			c.durWait = false
			if !c.released {
				c.sess.need = 0
				l.serve(c, syscall.EPOLLOUT) // may park it again
			}
		}
		l.durSync.settling = false
		clear(go1)
		l.durGo = go1[:0]
		if len(go1) > 0 {
			continue // serving may have parked some again
		}
		if oldest == 0 || !always {
			break // (Write leaves no commit unwritten without an error)
		}
		if l.durSync.self {
			_ = log.Sync(newest) // a failure is each connection's, above
			l.selfSyncs.Add(1)
			continue
		}
		// Ask to be woken, then look again: the commit may have been
		// synced before the writer could see the request.
		l.durWaiter.Want(oldest)
		if ok, err := log.DurableOrErr(oldest); !ok && err == nil {
			return
		}
	}
	if l.durWaiter != nil {
		l.durWaiter.Want(0)
	}
}
