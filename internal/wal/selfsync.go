package wal

// Syncing from the caller under SyncEach, as Redis's event loop does with
// appendfsync always: a goroutine whose clients mostly wait for the log
// anyway (an event loop serving a write-heavy load) writes and syncs the
// buffer itself at the end of its round, and then answers them all,
// instead of handing every batch to the writer goroutine and being woken
// when it is synced. It blocks for the fsync, but saves the two
// goroutine hand-offs (and their thread wake-ups) per batch, and the
// requests that arrive meanwhile pile up into the next batch: one fsync
// for every client, where the writer's fsync covers only those that came
// while the previous one ran.

// SyncsItself tells the log whether the caller now syncs the records it
// waits for itself (Sync), instead of leaving them to the writer
// goroutine. While any caller does, EndRecord does not wake the writer
// for each record: whoever else waits for a record wakes it (WaitDurable,
// Waiter.Want). Every SyncsItself(true) must be matched by a
// SyncsItself(false).
func (l *Log) SyncsItself(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.selfSyncers.Add(1)
		return
	}
	if l.selfSyncers.Add(-1) == 0 && l.records > 0 {
		// Records appended while EndRecord left them to a caller.
		l.wakeWriterLocked()
	}
}

// wakeForWaiter wakes the writer for a goroutine about to wait for a
// record, when EndRecord may not have (see SyncsItself).
func (l *Log) wakeForWaiter() {
	if l.selfSyncers.Load() == 0 {
		return // EndRecord woke it (or SyncsItself(false) did)
	}
	l.mu.Lock()
	if l.records > 0 {
		l.wakeWriterLocked()
	}
	l.mu.Unlock()
}

// Sync makes the records up to timestamp ts durable from the calling
// goroutine, unless they are already: it writes everything buffered
// with one write system call and syncs the segment, then wakes the
// Waiters whose records that covered. Syncs are serialized (the writer
// goroutine's too), so a Sync that waited for another's may find its
// records synced. While the writer switches segments, Sync waits for it
// instead. It returns an error wrapping ErrFailed if the write or the
// sync failed (from then on the log takes no record), or ErrClosed.
func (l *Log) Sync(ts uint64) error {
	if l.durable.Load() >= ts {
		return nil
	}
	l.smu.Lock()
	if l.durable.Load() >= ts {
		l.smu.Unlock()
		return nil
	}
	handOff, n, written, err := l.writeOut(ts)
	if handOff {
		l.smu.Unlock()
		return l.waitFor(&l.durable, ts)
	}
	if err == nil {
		err = l.f.Sync()
	}
	failure := l.settle(&l.durable, written, err)
	l.smu.Unlock()
	l.notify(failure != nil)
	if failure != nil {
		return failure
	}
	if n > 0 && l.opts.OnWrite != nil {
		l.opts.OnWrite(l.sinceRot.Load())
	}
	return nil
}
