package main

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/herald-dev/herald/backup"
	"github.com/herald-dev/herald/store"
)

// validateBackups checks [store] backup_dir, backup_every and backup_keep.
func (c *Config) validateBackups(bad func(key, format string, args ...any)) {
	if c.Store.BackupEvery.Duration != 0 && c.Store.BackupEvery.Duration < time.Second {
		bad("store.backup_every", "must be empty (off) or at least 1s, got %s", c.Store.BackupEvery.Duration)
	}
	if c.Store.BackupKeep < 1 {
		bad("store.backup_keep", "must be at least 1, got %d", c.Store.BackupKeep)
	}
	if c.Store.BackupDir != "" && strings.TrimSpace(c.Store.BackupDir) != "" &&
		filepath.Clean(c.Store.BackupDir) == filepath.Dir(filepath.Clean(c.Store.Path)) {
		bad("store.backup_dir", "must not be the database's own directory (%q): use a directory of its own", c.Store.BackupDir)
	}
}

// backupDir is store.backup_dir, or "backups" beside the database.
func (c *Config) backupDir() string {
	if strings.TrimSpace(c.Store.BackupDir) != "" {
		return filepath.Clean(c.Store.BackupDir)
	}
	return filepath.Join(filepath.Dir(c.Store.Path), "backups")
}

// checkBackup verifies a backup file before it takes its name.
func checkBackup(path string) error {
	_, err := store.Verify(context.Background(), path)
	return err
}

// backupScheduler is nil when store.backup_every is off.
func (a *app) backupScheduler() (*backup.Scheduler, error) {
	if a.cfg.Store.BackupEvery.Duration == 0 {
		return nil, nil
	}
	return backup.New(a.db, backup.Options{
		Dir: a.cfg.backupDir(), Every: a.cfg.Store.BackupEvery.Duration, Keep: a.cfg.Store.BackupKeep,
		Check: checkBackup, Logger: a.log,
	})
}
