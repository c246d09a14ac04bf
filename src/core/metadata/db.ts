import { DatabaseSync, type StatementSync } from "node:sqlite";

/** Told after every committed write transaction whether anything was deleted since the last collection. */
export type MutationListener = (dirty: boolean) => void;

/**
 * The daemon's one metadata database (SQLite, WAL). Every store creates its own tables through
 * `migrate()` and does every multi-step change inside `tx()`, so a crash leaves either all or none.
 * Rows are namespaced by a `namespace` column where the object belongs to one.
 *
 * Like containerd's bolt metadata it tracks mutations for the garbage collector's scheduler: every
 * committed transaction is a mutation, and a store that removes a reference (an image, a lease, …)
 * marks the database dirty until the next collection.
 */
export class MetadataDB {
  readonly #db: DatabaseSync;
  #depth = 0;
  /** Deletions committed since the last collection (containerd's `dirty`). */
  #dirty = 0;
  /** Deletions made by the open transaction, counted once it commits. */
  #pendingDirty = 0;
  #collecting = false;
  readonly #listeners = new Set<MutationListener>();

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

  /**
   * Runs `fn` in one transaction. A nested call runs in a savepoint of the outer one: when it throws,
   * only its own changes are undone, so a caller that catches the error keeps the rest. Mutation
   * listeners hear of the outermost commit.
   */
  tx<T>(fn: () => T): T {
    if (this.#depth > 0) return this.#savepoint(fn);
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth = 1;
    let out: T;
    try {
      out = fn();
      this.#db.exec("COMMIT");
    } catch (err) {
      this.#db.exec("ROLLBACK");
      this.#pendingDirty = 0;
      throw err;
    } finally {
      this.#depth = 0;
    }
    this.#dirty += this.#pendingDirty;
    this.#pendingDirty = 0;
    if (!this.#collecting) {
      const dirty = this.#dirty > 0;
      for (const listener of this.#listeners) listener(dirty);
    }
    return out;
  }

  #savepoint<T>(fn: () => T): T {
    const name = `sp${this.#depth}`;
    this.#db.exec(`SAVEPOINT ${name}`);
    this.#depth++;
    try {
      const out = fn();
      this.#db.exec(`RELEASE ${name}`);
      return out;
    } catch (err) {
      this.#db.exec(`ROLLBACK TO ${name}`);
      this.#db.exec(`RELEASE ${name}`);
      throw err;
    } finally {
      this.#depth--;
    }
  }

  /**
   * Records, inside a transaction, that a reference was removed, so the next collection may free
   * something. containerd counts the same operations: deleting an image, a container, a lease, a
   * lease's resource, content or a snapshot.
   */
  markDirty(): void {
    this.#pendingDirty++;
  }

  /** Whether references were removed since the last collection. */
  get dirty(): boolean {
    return this.#dirty > 0;
  }

  /**
   * Runs the garbage collector's transaction. Its own removals are not news to the scheduler, and once
   * it commits the database is clean: every deletion before it has been collected.
   */
  collect<T>(fn: () => T): T {
    if (this.#depth > 0) throw new Error("A garbage collection cannot run inside another transaction");
    this.#collecting = true;
    try {
      const out = this.tx(fn);
      this.#dirty = 0;
      return out;
    } finally {
      this.#collecting = false;
    }
  }

  /** Calls `listener` after every committed transaction but the collector's; returns the unsubscribe. */
  onMutation(listener: MutationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#db.close();
  }
}
