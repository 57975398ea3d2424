import type { Clock } from '../clock.ts';
import type { Socket } from 'node:net';

/**
 * Whether a client left before it was spliced, and the one wait (a dial or a backoff) to end then: an
 * AbortController per connection would cost an EventTarget for what is one flag and one callback.
 */
export class ClientDeparture {
  left = false;
  private waiter: (() => void) | undefined;

  leave(): void {
    if (this.left) return;
    this.left = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  onLeave(waiter: (() => void) | undefined): void {
    this.waiter = waiter;
  }
}

/**
 * The dial's socket, or undefined as soon as the client leaves: a pod that drops SYNs must not keep a
 * departed client counted as open for the whole dial timeout. A socket that connects later is closed.
 */
export function unlessClientLeaves(dialing: Promise<Socket>, clientLeft: ClientDeparture): Promise<Socket | undefined> {
  return new Promise((resolve, reject) => {
    const onLeft = () => {
      dialing.then(
        (late) => late.destroy(),
        () => undefined,
      );
      resolve(undefined);
    };
    if (clientLeft.left) return onLeft();
    clientLeft.onLeave(onLeft);
    dialing.then(
      (socket) => {
        clientLeft.onLeave(undefined);
        resolve(socket);
      },
      (error: Error) => {
        clientLeft.onLeave(undefined);
        reject(error);
      },
    );
  });
}

/** Waits out a dial backoff, ending early if the client leaves. */
export function sleepUnlessClientLeaves(clock: Clock, delayMs: number, clientLeft: ClientDeparture): Promise<void> {
  return new Promise((resolve) => {
    if (clientLeft.left) return resolve();
    const onLeft = () => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimer(delayMs, () => {
      clientLeft.onLeave(undefined);
      resolve();
    });
    clientLeft.onLeave(onLeft);
  });
}
