/** Test helpers for the server end: a stand-in for the node:net socket a connection serves. */

import { EventEmitter } from "node:events";

/** Records what the connection writes; `blocked`, it asks for a drain until unblock(). */
export class FakeSocket extends EventEmitter {
  readonly written: Uint8Array[] = [];
  destroyed = false;
  writable = true;
  ended = false;
  blocked = false;
  paused = false;

  write(b: Uint8Array): boolean {
    this.written.push(b);
    return !this.blocked;
  }

  unblock(): void {
    this.blocked = false;
    this.emit("drain");
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  end(): void {
    this.ended = true;
    this.emit("close");
  }

  destroy(): void {
    this.destroyed = true;
    this.emit("close");
  }
}
