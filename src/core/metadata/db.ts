import { DatabaseSync, type StatementSync } from "node:sqlite";

/**
 * The daemon's one metadata database (SQLite, WAL). Every store creates its own tables through
 * `migrate()` and does every multi-step change inside `tx()`, so a crash leaves either all or none.
 * Rows are namespaced by a `namespace` column where the object belongs to one.
 */
export class MetadataDB {
  readonly #db: DatabaseSync;
  #depth = 0;

  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = NORMAL");
    this.#db.exec("PRAGMA foreign_keys = ON");
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#db.exec(
      "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    );
  }

  /** The raw handle, for prepared statements. */
  get sql(): DatabaseSync {
    return this.#db;
  }

  /**
   * A statement whose INTEGER columns read as bigint. Times are stored as nanoseconds since 1970
   * (~1.8e18), past the 2^53 a number holds exactly; node:sqlite throws rather than round them, so
   * every statement that reads a time must read bigints (and convert sizes and ids with Number()).
   */
  prepareBigInts(sql: string): StatementSync {
    const stmt = this.#db.prepare(sql);
    stmt.setReadBigInts(true);
    return stmt;
  }

  /**
   * Brings `component`'s tables up to `steps.length`: step i runs once, when the stored version is i.
   * Steps are appended, never edited, so an older database migrates forward.
   */
  migrate(component: string, steps: readonly string[]): void {
    this.tx(() => {
      const row = this.#db.prepare("SELECT version FROM schema_versions WHERE component = ?").get(
        component,
      ) as
        | { version: number }
        | undefined;
      const from = row?.version ?? 0;
      for (let i = from; i < steps.length; i++) this.#db.exec(steps[i]!);
      if (from !== steps.length) {
        this.#db.prepare(
          "INSERT INTO schema_versions (component, version) VALUES (?, ?) " +
            "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
        ).run(component, steps.length);
      }
    });
  }

  /** Runs `fn` in one transaction (nested calls join the outer one). */
  tx<T>(fn: () => T): T {
    if (this.#depth > 0) {
      this.#depth++;
      try {
        return fn();
      } finally {
        this.#depth--;
      }
    }
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth = 1;
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    } finally {
      this.#depth = 0;
    }
  }

  close(): void {
    this.#db.close();
  }
}
