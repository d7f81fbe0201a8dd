package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/herald-dev/herald"
	bolt "go.etcd.io/bbolt"
)

// fullSubscriber sets every field of herald.Subscriber to something that
// is not its zero value, by reflection: a field added to the type and not
// to the codec makes TestSubCodecRoundTrip fail.
func fullSubscriber(t testing.TB) *herald.Subscriber {
	t.Helper()
	s := new(herald.Subscriber)
	v := reflect.ValueOf(s).Elem()
	at := time.Date(2025, 3, 1, 7, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for i := range v.NumField() {
		f := v.Field(i)
		n := i + 1
		switch f.Interface().(type) {
		case uint64:
			f.SetUint(uint64(n) << 40)
		case int:
			f.SetInt(int64(n))
		case string, herald.Status, herald.Frequency:
			f.SetString(fmt.Sprintf("%s-ä-%d", v.Type().Field(i).Name, n))
		case time.Time:
			f.Set(reflect.ValueOf(at.Add(time.Duration(n) * time.Hour)))
		case *time.Time:
			tt := at.Add(time.Duration(n) * time.Minute).UTC()
			f.Set(reflect.ValueOf(&tt))
		case []time.Time:
			f.Set(reflect.ValueOf([]time.Time{at, at.Add(time.Second).UTC(), {}}))
		case herald.TopicList:
			f.Set(reflect.ValueOf(herald.TopicList{"Courts", fmt.Sprintf("Topic ä %d", n)}))
		default:
			t.Fatalf("field %s of type %s: teach fullSubscriber and the codec about it", v.Type().Field(i).Name, f.Type())
		}
	}
	return s
}

// sameSubscriber compares field by field, times by instant and offset.
func sameSubscriber(t *testing.T, got, want *herald.Subscriber) {
	t.Helper()
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := range wv.NumField() {
		name := wv.Type().Field(i).Name
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !sameValue(g, w) {
			t.Errorf("%s = %v, want %v", name, g, w)
		}
	}
}

func sameValue(g, w any) bool {
	sameTime := func(a, b time.Time) bool {
		_, ao := a.Zone()
		_, bo := b.Zone()
		return a.Equal(b) && ao == bo
	}
	switch w := w.(type) {
	case time.Time:
		return sameTime(g.(time.Time), w)
	case *time.Time:
		g := g.(*time.Time)
		return (g == nil) == (w == nil) && (w == nil || sameTime(*g, *w))
	case []time.Time:
		g := g.([]time.Time)
		if len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameTime(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(g, w)
}

func TestSubCodecRoundTrip(t *testing.T) {
	for name, s := range map[string]*herald.Subscriber{
		"full":   fullSubscriber(t),
		"zero":   {},
		"sparse": {ID: 7, Email: "a@example.org", Status: herald.StatusConfirmed, Frequency: herald.Daily, CreatedAt: time.Now(), Bounces: -1},
	} {
		t.Run(name, func(t *testing.T) {
			b := encodeSub(nil, s)
			if b[0] != subFormatV3 {
				t.Fatalf("format byte %#x", b[0])
			}
			var got herald.Subscriber
			if err := decodeSub(b, &got); err != nil {
				t.Fatal(err)
			}
			sameSubscriber(t, &got, s)
			// Decoding copies: the record's bytes may be reused.
			clear(b)
			sameSubscriber(t, &got, s)
		})
	}
}

// Records of version 1 (schemas 3 to 6) read the same, with no choices
// and the site's language.
func TestSubCodecReadsV1(t *testing.T) {
	s := fullSubscriber(t)
	s.Topics, s.Timezone, s.PausedUntil, s.PausedAt, s.LastSlot, s.Language = nil, "", nil, time.Time{}, time.Time{}, ""
	b := encodeSub(nil, s)
	// Version 1 is version 3 without the choices and the language: no
	// topics, an empty zone, three absent times and an empty language.
	if !bytes.HasSuffix(b, []byte{0, 0, 0, 0, 0, 0}) {
		t.Fatalf("unexpected tail %x", b[len(b)-6:])
	}
	v1 := append([]byte{subFormatV1}, b[1:len(b)-6]...)
	var got herald.Subscriber
	if err := decodeSub(v1, &got); err != nil {
		t.Fatal(err)
	}
	sameSubscriber(t, &got, s)
	if err := decodeSub(append(v1, 0), &got); err == nil {
		t.Error("a version 1 record with a byte left over decoded")
	}
}

// Records written as JSON (schema 2 and before) read the same.
func TestSubCodecReadsJSON(t *testing.T) {
	s := fullSubscriber(t)
	rec := subRecord(*s)
	b, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	var got herald.Subscriber
	if err := decodeSub(b, &got); err != nil {
		t.Fatal(err)
	}
	sameSubscriber(t, &got, s)
}

func TestSubCodecRefusesCorruptRecords(t *testing.T) {
	b := encodeSub(nil, fullSubscriber(t))
	for n := range len(b) {
		var s herald.Subscriber
		if err := decodeSub(b[:n], &s); err == nil {
			t.Errorf("a record cut to %d of %d bytes decoded", n, len(b))
		}
	}
	for _, bad := range [][]byte{
		append(bytes.Clone(b), 0), // trailing garbage
		{0x03, 1, 2, 3},           // unknown version
		{subFormatV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // varint overflow
		{subFormatV1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},                                  // string longer than the record
		[]byte(`{"id":`),
	} {
		var s herald.Subscriber
		if err := decodeSub(bad, &s); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}

func FuzzDecodeSub(f *testing.F) {
	f.Add(encodeSub(nil, fullSubscriber(f)))
	f.Add(encodeSub(nil, &herald.Subscriber{}))
	f.Add([]byte(`{"id":1,"email":"a@b.c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s herald.Subscriber
		if err := decodeSub(b, &s); err != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		// What decodes encodes back to bytes that decode the same.
		var again herald.Subscriber
		if err := decodeSub(encodeSub(nil, &s), &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		sameSubscriber(t, &again, &s)
	})
}

// A database of schema 2, with subscribers stored as JSON, opens at
// schema 3 with every record rewritten in the binary form, and reads the
// same before and after.
func TestOpenConvertsJSONSubscribers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db := openTest(t, path, nil)
	const n = convertChunk + 123 // more than one transaction's worth
	bulkInsert(t, db, n, func(i int) *herald.Subscriber {
		return &herald.Subscriber{Email: fmt.Sprintf("r%d@example.org", i), Status: herald.StatusConfirmed, Frequency: herald.Daily,
			CreatedAt: time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC), Cursor: uint64(i), Name: "Reader ä"}
	})
	want, err := db.ScanSubscribers(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	// Turn it into what schema 2 wrote: JSON records, no conversion mark.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubs)
		var keys, vals [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var s herald.Subscriber
			if err := decodeSub(v, &s); err != nil {
				return err
			}
			rec := subRecord(s)
			j, err := json.Marshal(&rec)
			keys, vals = append(keys, bytes.Clone(k)), append(vals, j)
			return err
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		// A record that does not decode is left alone, not fatal.
		if err := b.Put(itob(n+1), []byte(`{"id":`)); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, 2)
		if err := meta.Put(keySchemaVersion, v); err != nil {
			return err
		}
		return meta.Delete(keyConvertSubs)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openTest(t, path, nil)
	got, err := db.ScanSubscribers(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d subscribers after the conversion, want %d", len(got), len(want))
	}
	for i := range want {
		sameSubscriber(t, got[i], want[i])
	}
	var json, other int
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyConvertSubs) != nil {
			t.Error("the conversion mark is still there")
		}
		return tx.Bucket(bucketSubs).ForEach(func(k, v []byte) error {
			switch v[0] {
			case '{':
				json++
			case subFormatV3:
			default:
				other++
			}
			return nil
		})
	})
	if json != 1 || other != 0 {
		t.Errorf("%d JSON records left (want only the broken one), %d unknown", json, other)
	}
	if s, err := db.SubscriberByEmail(ctx, "r42@example.org"); err != nil || s.Cursor != 42 || s.Name != "Reader ä" {
		t.Errorf("r42 after the conversion: %+v %v", s, err)
	}
}

// TestSubCodecReadsV2: a record written before readers had a language
// (schema 7) still reads, choices and all, with the site's language.
func TestSubCodecReadsV2(t *testing.T) {
	s := fullSubscriber(t)
	s.Language = "de"
	b := encodeSub(nil, s)
	// Version 2 is version 3 without the language at the end.
	v2 := append([]byte{subFormatV2}, b[1:len(b)-len(appendString(nil, "de"))]...)
	var got herald.Subscriber
	if err := decodeSub(v2, &got); err != nil {
		t.Fatal(err)
	}
	want := *s
	want.Language = ""
	sameSubscriber(t, &got, &want)
	if err := decodeSub(b, &got); err != nil || got.Language != "de" {
		t.Errorf("v3 record: language %q, %v", got.Language, err)
	}
	if err := decodeSub(append(v2, 0), &got); err == nil {
		t.Error("a version 2 record with a byte left over decoded")
	}
}

// TestMigrateSchema7: a database written before readers had a language
// (schema 7, subscriber records of version 2) opens as schema 8; its
// readers keep their choices with the site's language, and a change to
// one writes the new version with the language.
func TestMigrateSchema7(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "schema7.db")
	db := openTest(t, path, nil)
	until := time.Date(2030, 1, 2, 7, 0, 0, 0, time.UTC)
	for i, email := range []string{"ann@example.org", "bob@example.org"} {
		_, err := db.MutateSubscriber(ctx, email, func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
			next := *cur
			next.Status, next.Frequency, next.CreatedAt = herald.StatusConfirmed, herald.Daily, until.AddDate(-5, 0, i)
			next.Topics, next.Timezone, next.PausedUntil = herald.TopicList{"Courts"}, "Asia/Kolkata", &until
			return &next, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	// Turn the file into what herald at schema 7 wrote.
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubs)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v[0] != subFormatV3 || v[len(v)-1] != 0 {
				return fmt.Errorf("record %x is not a version 3 one with the site's language", v)
			}
			old := append([]byte{subFormatV2}, v[1:len(v)-1]...)
			if err := b.Put(k, old); err != nil {
				return err
			}
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, 7)
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	if info, err := Verify(ctx, path); err != nil || info.Schema != 7 {
		t.Fatalf("before: %+v %v", info, err)
	}

	db = openTest(t, path, nil)
	s, err := db.SubscriberByEmail(ctx, "ann@example.org")
	if err != nil || s.Language != "" || s.Timezone != "Asia/Kolkata" || len(s.Topics) != 1 || s.PausedUntil == nil || !s.PausedUntil.Equal(until) {
		t.Fatalf("ann after the migration: %+v %v", s, err)
	}
	if _, err := db.MutateSubscriber(ctx, "ann@example.org", func(cur *herald.Subscriber) (*herald.Subscriber, []*herald.OutboxMessage, error) {
		next := *cur
		next.Language = "de"
		return &next, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if s, _ = db.SubscriberByEmail(ctx, "ann@example.org"); s.Language != "de" || s.Timezone != "Asia/Kolkata" {
		t.Fatalf("ann after a change: %+v", s)
	}
	db.Close()
	if info, err := Verify(ctx, path); err != nil || info.Schema != SchemaVersion() || SchemaVersion() != 8 {
		t.Fatalf("after: %+v %v (this herald: schema %d)", info, err, SchemaVersion())
	}
}
