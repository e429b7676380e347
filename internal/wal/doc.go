// Package wal holds kvd's durable formats and the machinery that writes
// them: the framing shared by log segments and snapshots (a versioned file
// header, then records framed by length and CRC-32C), the commit and
// snapshot record payloads, a decoder that tells a torn tail from damage,
// the group-commit Log writer with its sync modes, and the file-system
// layer (the real one, and StrictMem, which loses what was not synced).
//
// The format is described for readers in the repository's README
// ("The log and snapshot format").
package wal
