package wal

// Space reserved ahead of the records, as PostgreSQL fills its WAL
// segments with zeros before using them: an fsync of records appended at
// the end of a file must also write the file's new size (on ext4, a
// second disk write for every sync); an fsync of records written over
// zeros that were already written and synced need not. So the writer
// goroutine keeps Options.Reserve bytes of zeros written and synced
// ahead of the open segment's records, and records overwrite them. A
// reader takes zero bytes up to the end of a file for its clean end (see
// Reader.Next); a record cut by a crash before zeros is still a torn
// tail, and zeros with records after them are still damage.

// reserveStep is how many zero bytes the writer writes at a time, under
// wmu (appends wait for each step, not for the whole reservation).
const reserveStep = 256 << 10

var zeros [reserveStep]byte

// reserveLow reports whether the zeros ahead of the records have shrunk
// below half of Options.Reserve.
func (l *Log) reserveLow() bool {
	return l.opts.Reserve > 0 && l.size.Load()+l.opts.Reserve/2 > l.reserved.Load()
}

// reserve tops the zeros ahead of the open segment's records up to
// Options.Reserve once they have shrunk below half of it, and syncs
// them. Called by the writer goroutine only (which alone replaces f).
// Writing zeros that fails (a full disk) stops reserving: records are
// then appended as without it. A failed sync fails the log, as any
// failed sync of the segment does (it may have dropped records' dirty
// pages along with the zeros).
func (l *Log) reserve() {
	if l.reserveStopped || !l.reserveLow() {
		return
	}
	for {
		l.wmu.Lock()
		if l.fclosed {
			l.wmu.Unlock()
			return
		}
		size := l.size.Load()
		start := max(l.reserved.Load(), size)
		if start >= size+l.opts.Reserve {
			l.wmu.Unlock()
			break
		}
		n := min(reserveStep, l.opts.Reserve)
		_, err := l.f.WriteAt(zeros[:n], start)
		if err == nil {
			l.reserved.Store(start + n)
		}
		l.wmu.Unlock()
		if err != nil {
			l.reserveStopped = true
			return
		}
	}
	if err := l.f.Sync(); err != nil {
		l.mu.Lock()
		l.fail(err)
		l.durCond.Broadcast()
		l.mu.Unlock()
		l.notify(true)
	}
}
