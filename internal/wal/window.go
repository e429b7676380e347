package wal

import "time"

// The group commit window of SyncEach: how long the writer lets a batch
// fill before it writes and syncs it (see windowFor).

const (
	// maxWindow caps the group commit window (see windowFor).
	maxWindow = time.Millisecond
	// windowSkips is how many batches are written without a window
	// after a window that ran out before most of its records came.
	windowSkips = 4
)

// windowFor is the group commit policy of SyncEach, for a writer woken by
// a record, whose last fsync took syncTook. Under steady load, the
// clients whose commits the last fsync acknowledged come back with new
// ones a moment later; a writer that starts the next fsync at once syncs
// only those that came during the last one, and the clients split into
// two groups that alternate, each waiting for the other's fsync as well
// as its own: half the commits per fsync. So, as MySQL's
// binlog_group_commit_sync_delay and PostgreSQL's commit_delay do, the
// writer waits until as many records are buffered as the last batch had
// plus those that came while it was synced (expect), for at most half
// the last fsync's time (and maxWindow; Go's timers may round it up to a
// millisecond): one group, every commit in every fsync. A lone committer
// expects one record and never waits. When most of the records do not
// come in time (clients that read between their writes, or went away),
// the window only delayed a batch: the writer then skips it for the next
// windowSkips batches (skip). An event loop that runs out of requests
// while responses wait for the log ends the window at once (EndWindow):
// whoever else is coming is not coming soon. windowFor returns how long
// to wait, and false when nothing is buffered (a stale wake-up). It
// opens the window (EndRecord wakes the writer when expect is reached).
func (l *Log) windowFor(syncTook time.Duration, skip bool) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.records == 0 && l.rot == nil {
		l.kicked = false
		return 0, false
	}
	wait := min(syncTook/2, maxWindow)
	if skip || l.rot != nil || l.records >= l.expect || wait <= 0 {
		return 0, true
	}
	l.windowOpen = true
	return wait, true
}

// EndWindow tells the writer that no more records are coming soon (an
// event loop with responses waiting for the log has nothing left to
// read): if it is waiting for a batch to fill (see windowFor), it writes
// the batch now instead of at the end of its window.
func (l *Log) EndWindow() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windowOpen {
		l.windowOpen = false
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// windowMissed reports, when a window ran out, whether most of the
// records it waited for did not come: the clients do not come back
// right after their acknowledgment (they read in between, or went away),
// and the window only delayed this batch.
func (l *Log) windowMissed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.records*2 < l.expect
}
