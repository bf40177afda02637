package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Migrate creates or completes the tables and indexes the store needs (also
// over the seeds' own tables), idempotently and serialized across processes;
// see the package doc's Schema.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.kit.Enter(ctx, "Migrate"); err != nil {
		return err
	}
	s.migMu.Lock()
	defer s.migMu.Unlock()
	unlock := s.lockWrites()
	defer unlock()
	return s.kit.Fail(ctx, "Migrate", s.migrate(ctx))
}

// migrator is the connection or transaction Migrate works on.
type migrator interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrate runs the migration on a connection of its own, as the dialect
// serializes it (see dialect.migrateOn).
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return s.d.migrateOn(ctx, conn, func(m migrator) error { return s.migrateTables(ctx, m) })
}

func (s *Store) migrateTables(ctx context.Context, conn migrator) error {
	for _, spec := range s.specs() {
		if err := s.migrateTable(ctx, conn, spec); err != nil {
			return fmt.Errorf("table %s: %w", spec.name, err)
		}
	}
	return s.migrateSeq(ctx, conn)
}

func (s *Store) migrateTable(ctx context.Context, conn migrator, spec tableSpec) error {
	d := s.d
	q := d.quote(spec.name)
	have, err := s.columns(ctx, conn, spec.name)
	if err != nil {
		return err
	}
	exec := func(query string) error {
		if _, err := conn.ExecContext(ctx, query); err != nil {
			return fmt.Errorf("%s: %w", query, err)
		}
		return nil
	}
	hash := d.hashKeys() && spec.hash != nil
	if len(have) == 0 {
		var b strings.Builder
		b.WriteString("CREATE TABLE IF NOT EXISTS " + q + " (\n")
		for i, c := range spec.cols {
			if i > 0 {
				b.WriteString(",\n")
			}
			b.WriteString("  " + c.name + " " + d.colType(c.kind))
			if c.notNull {
				b.WriteString(" NOT NULL")
			}
		}
		if hash {
			b.WriteString(",\n  " + hashCol + " " + d.colType(kHash) + " AS (" + hashExpr(spec.hash) + ") STORED INVISIBLE")
		}
		b.WriteString("\n)" + d.tableOptions())
		if err := exec(b.String()); err != nil {
			return err
		}
	} else {
		var alters, adds []string
		altered := map[string]bool{}
		for _, c := range spec.cols {
			info, ok := have[c.name]
			if !ok {
				adds = append(adds, c.name+" "+d.colType(c.kind))
				continue
			}
			if c.kind == kSerial || d.columnOK(c.kind, info) {
				continue
			}
			altered[c.name] = true
			before, alter := d.retype(q, c, info)
			for _, b := range before {
				if err := exec(b); err != nil {
					return err
				}
			}
			if alter != "" {
				alters = append(alters, alter)
			}
		}
		if len(altered) > 0 {
			drops, err := d.unindex(ctx, conn, spec.name, altered)
			if err != nil {
				return err
			}
			for _, drop := range drops {
				if err := exec(drop); err != nil {
					return err
				}
			}
		}
		for _, a := range alters {
			if err := exec("ALTER TABLE " + q + " " + a); err != nil {
				return err
			}
		}
		for _, a := range adds {
			if err := exec("ALTER TABLE " + q + " ADD COLUMN " + a); err != nil {
				return err
			}
		}
		if _, ok := have[hashCol]; hash && !ok {
			if err := exec("ALTER TABLE " + q + " ADD COLUMN " + hashCol + " " + d.colType(kHash) + " AS (" + hashExpr(spec.hash) + ") STORED INVISIBLE"); err != nil {
				return err
			}
		}
	}
	creates, err := d.createIndexes(ctx, conn, spec)
	if err != nil {
		return err
	}
	for _, c := range creates {
		if err := exec(c); err != nil {
			return err
		}
	}
	return nil
}
