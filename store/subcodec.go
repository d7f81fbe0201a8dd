package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// Subscriber records are stored in a compact binary form: a digest run
// reads every reader's record (the scan, the re-read before composing)
// and writes it back (the delivery), so with a million readers the
// encoding is a large share of a run's CPU. JSON, the form of schema 2
// and before, took about ten times longer to decode. Records written in
// JSON are still read (a JSON record starts with '{'); Open converts them
// once, after the migration to schema 3.
//
// The binary form, version 1, is a version byte and then every field of
// herald.Subscriber in declaration order:
//
//	strings: uvarint length, bytes
//	integers: uvarint (Bounces: zig-zag varint)
//	times: one length byte, then time.Time's MarshalBinary form
//	optional times: one byte, 0 = nil, 1 = a time follows
//	ConfirmsSent: uvarint count, then the times
//
// Version 2 (schema 7) adds, after Source, the reader's choices:
//
//	Topics: uvarint count, then the strings
//	Timezone: a string
//	PausedUntil: an optional time
//	PausedAt, LastSlot: times that are usually zero, as optional times
//	(0 for the zero time)
//
// Version 3 (schema 8) adds, after those, the reader's Language (a
// string). Version 1 and 2 records are still read (their choices are
// empty, their language the site's); every
// write is version 3.
const (
	subFormatV1 = 0x01
	subFormatV2 = 0x02
	subFormatV3 = 0x03
)

// encodeSub appends s in the binary form to dst.
func encodeSub(dst []byte, s *herald.Subscriber) []byte {
	dst = append(dst, subFormatV3)
	dst = binary.AppendUvarint(dst, s.ID)
	dst = appendString(dst, s.Email)
	dst = appendString(dst, s.Name)
	dst = appendString(dst, string(s.Status))
	dst = appendString(dst, string(s.Frequency))
	dst = appendTime(dst, s.CreatedAt)
	dst = appendOptTime(dst, s.ConfirmedAt)
	dst = appendOptTime(dst, s.UnsubscribedAt)
	dst = appendTime(dst, s.UpdatedAt)
	dst = binary.AppendUvarint(dst, s.Nonce)
	dst = binary.AppendUvarint(dst, uint64(len(s.ConfirmsSent)))
	for _, t := range s.ConfirmsSent {
		dst = appendTime(dst, t)
	}
	dst = binary.AppendUvarint(dst, s.Cursor)
	dst = binary.AppendUvarint(dst, s.LastRunID)
	dst = binary.AppendVarint(dst, int64(s.Bounces))
	dst = appendString(dst, s.Source)
	dst = binary.AppendUvarint(dst, uint64(len(s.Topics)))
	for _, t := range s.Topics {
		dst = appendString(dst, t)
	}
	dst = appendString(dst, s.Timezone)
	dst = appendOptTime(dst, s.PausedUntil)
	dst = appendZeroTime(dst, s.PausedAt)
	dst = appendZeroTime(dst, s.LastSlot)
	dst = appendString(dst, s.Language)
	return dst
}

// appendZeroTime is appendOptTime for a time whose zero value means none.
func appendZeroTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return appendTime(append(dst, 1), t)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	at := len(dst)
	dst = append(dst, 0)
	dst, err := t.AppendBinary(dst)
	if err != nil {
		// Only a zone offset that is not a whole number of minutes, or a
		// year out of range, fail; keep the instant in UTC instead.
		dst, _ = t.UTC().AppendBinary(dst[:at+1])
	}
	dst[at] = byte(len(dst) - at - 1)
	return dst
}

func appendOptTime(dst []byte, t *time.Time) []byte {
	if t == nil {
		return append(dst, 0)
	}
	return appendTime(append(dst, 1), *t)
}

// errCorrupt is wrapped by decodeSub for a record that does not parse.
var errCorrupt = errors.New("corrupt subscriber record")

// subDecoder reads the binary form; the first error sticks.
type subDecoder struct {
	b   []byte
	err error
}

func (d *subDecoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *subDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *subDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// string copies: the record's bytes are only valid inside the transaction.
func (d *subDecoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// The few values most fields take, so decoding them allocates nothing.
var (
	statusNames    = []string{"confirmed", "pending", "unsubscribed", "bounced"}
	frequencyNames = []string{"daily", "weekly", "instant"}
	sourceNames    = []string{"import", "form", "api"}
	languageNames  = []string{"", "en", "de", "fr", "es"}
)

// known is string for a field that is usually one of names: it returns
// the constant instead of a copy.
func (d *subDecoder) known(names []string) string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	for _, s := range names {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

func (d *subDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *subDecoder) time() time.Time {
	n := int(d.byte())
	if n > len(d.b) {
		d.fail()
		return time.Time{}
	}
	var t time.Time
	if d.err == nil {
		if err := t.UnmarshalBinary(d.b[:n]); err != nil {
			d.fail()
			return time.Time{}
		}
	}
	d.b = d.b[n:]
	return t
}

func (d *subDecoder) optTime() *time.Time {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		t := d.time()
		return &t
	}
	d.fail()
	return nil
}

// zeroTime reads what appendZeroTime wrote.
func (d *subDecoder) zeroTime() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return d.time()
	}
	d.fail()
	return time.Time{}
}

// decodeSub reads a stored record, binary or (from schema 2 and before)
// JSON, into s.
func decodeSub(v []byte, s *herald.Subscriber) error {
	if len(v) > 0 && v[0] == '{' {
		var rec subRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		*s = herald.Subscriber(rec)
		return nil
	}
	if len(v) == 0 || v[0] < subFormatV1 || v[0] > subFormatV3 {
		return fmt.Errorf("%w: unknown format", errCorrupt)
	}
	d := subDecoder{b: v[1:]}
	*s = herald.Subscriber{}
	s.ID = d.uvarint()
	s.Email = d.string()
	s.Name = d.string()
	s.Status = herald.Status(d.known(statusNames))
	s.Frequency = herald.Frequency(d.known(frequencyNames))
	s.CreatedAt = d.time()
	s.ConfirmedAt = d.optTime()
	s.UnsubscribedAt = d.optTime()
	s.UpdatedAt = d.time()
	s.Nonce = d.uvarint()
	if n := d.uvarint(); n > uint64(len(d.b)) {
		d.fail() // each time takes at least one byte
	} else if n > 0 {
		s.ConfirmsSent = make([]time.Time, n)
		for i := range s.ConfirmsSent {
			s.ConfirmsSent[i] = d.time()
		}
	}
	s.Cursor = d.uvarint()
	s.LastRunID = d.uvarint()
	s.Bounces = int(d.varint())
	s.Source = d.known(sourceNames)
	if v[0] >= subFormatV2 {
		if n := d.uvarint(); n > uint64(len(d.b)) {
			d.fail() // each string takes at least one byte
		} else if n > 0 {
			s.Topics = make(herald.TopicList, n)
			for i := range s.Topics {
				s.Topics[i] = d.string()
			}
		}
		s.Timezone = d.string()
		s.PausedUntil = d.optTime()
		s.PausedAt = d.zeroTime()
		s.LastSlot = d.zeroTime()
	}
	if v[0] >= subFormatV3 {
		s.Language = d.known(languageNames)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes left over", errCorrupt, len(d.b))
	}
	return d.err
}

// convertChunk is how many subscriber records one transaction of
// convertSubscribers looks at.
const convertChunk = 10000

// convertSubscribers rewrites subscriber records still in JSON in the
// binary form, a chunk per transaction, while meta says some may be left.
// It is safe to stop at any point: both forms are read, and the next Open
// goes on. A record that does not decode is left as it is (and logged).
func (db *DB) convertSubscribers(ctx context.Context) error {
	var pending bool
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(bucketMeta).Get(keyConvertSubs) != nil
		return nil
	}); err != nil || !pending {
		return err
	}
	start := time.Now()
	var after uint64
	converted, done := 0, false
	for !done {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: convert subscriber records: %w", err)
		}
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSubs)
			var keys, vals [][]byte
			c := b.Cursor()
			k, v := seekAfter(c, after)
			for n := 0; k != nil && n < convertChunk; n++ {
				after = btoi(k)
				if len(v) > 0 && v[0] == '{' {
					var s herald.Subscriber
					if err := decodeSub(v, &s); err != nil {
						db.log.Warn("store: subscriber record does not decode; left as it is", "id", after, "err", err)
					} else {
						keys = append(keys, bytes.Clone(k))
						vals = append(vals, encodeSub(nil, &s))
					}
				}
				k, v = c.Next()
			}
			done = k == nil
			// Written after the walk: putting under a live cursor can skip keys.
			for i := range keys {
				if err := b.Put(keys[i], vals[i]); err != nil {
					return err
				}
			}
			converted += len(keys)
			if done {
				return tx.Bucket(bucketMeta).Delete(keyConvertSubs)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: convert subscriber records: %w", err)
		}
	}
	if converted > 0 {
		db.log.Info("store: subscriber records converted to the binary form", "records", converted, "dur", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
