/*
 * The sending side of a batch: photos go to /predict a request at a time
 * (MAX_FILES_PER_REQUEST photos at most), each request sent until it is
 * answered. A busy server (429, 503) is waited for as long as its Retry-After
 * asks, a lost connection is tried again a few times, and a photo the server
 * refuses is taken out and the rest sent again. The run can be paused (after
 * the request under way) and cancelled (at once). It knows nothing of the
 * page: it reports through onProgress and its counters.
 */
import { chunksOf } from './checks.js';
import { post, retryDelay, withPhotos } from './net.js';

// Waits for 429/503 before a request is given up (Cancel stops sooner).
const MAX_WAITS = 60;
const NETWORK_RETRIES = 3;
// Errors of the request itself, not of one of its photos: sending the photos
// one by one would not help.
const REQUEST_ERRORS = ['csrf_failed', 'invalid_batch_id', 'too_many_files', 'payload_too_large'];

export class BatchRun {
  /**
   * @param {object} options
   * @param {string} options.url where the photos go (/predict)
   * @param {{maxBytes: number, maxFiles: number}} options.limits one request's limits
   * @param {number} options.total every photo of the run, skipped ones included
   * @param {{name: string, reason: string}[]} options.skipped left out before the run
   * @param {(note?: string) => void} options.onProgress called as the counters change
   */
  constructor({ url, limits, total, skipped, onProgress }) {
    this.url = url;
    this.limits = limits;
    this.onProgress = onProgress;
    this.total = total;
    this.done = 0;
    this.skipped = skipped;
    this.waits = 0;
    this.paused = false;
    this.cancelled = false;
    this.started = performance.now();
    this.pausedAt = 0;
    this.pausedMs = 0;
    // What ends a Retry-After wait, what ends a pause, and the request under way.
    this.wake = null;
    this.resume = null;
    this.controller = null;
  }

  /** Pause after the request under way, or resume. */
  togglePause() {
    this.paused = !this.paused;
    if (this.paused) this.pausedAt = performance.now();
    else this.pausedMs += performance.now() - this.pausedAt;
    if (!this.paused) this.release('resume');
  }

  /** Stop now: the request under way is aborted, a wait or a pause ends. */
  cancel() {
    this.cancelled = true;
    if (this.controller) this.controller.abort();
    this.release('wake');
    this.release('resume');
  }

  /** Photos classified per second, time spent paused not counted. */
  rate() {
    const now = performance.now();
    const pausedMs = this.pausedMs + (this.paused ? now - this.pausedAt : 0);
    const seconds = (now - this.started - pausedMs) / 1000;
    return seconds > 0 ? this.done / seconds : 0;
  }

  /** Send ``files`` into the batch ``batchId``. Resolves with '' when every
   * photo was classified or skipped, else with why the run stopped. */
  async send(files, batchId) {
    const queue = chunksOf(files, this.limits);
    this.onProgress();
    while (queue.length) {
      const chunk = queue.shift();
      const outcome = await this.sendChunk(chunk, batchId);
      if (outcome.cancelled) return 'Cancelled: the photos sent before stay in the batch.';
      if (outcome.fatal) return `Stopped: ${outcome.message}`;
      if (outcome.refused && chunk.length > 1) {
        // One photo refuses its whole request: send those one by one.
        queue.unshift(...chunk.map((file) => [file]));
      } else if (outcome.refused) {
        this.skipped.push({ name: chunk[0].name, reason: outcome.message });
      } else {
        this.done += chunk.length;
      }
      this.onProgress();
    }
    return '';
  }

  /** Send one request's photos until it is answered. Returns {ok}, {refused,
   * message} (the server refused an image: nothing of the request was
   * stored), {fatal, message} or {cancelled}. */
  async sendChunk(chunk, batchId) {
    let waits = 0;
    let failures = 0;
    for (;;) {
      await this.whilePaused();
      if (this.cancelled) return { cancelled: true };
      const data = withPhotos(chunk);
      data.append('batch_id', String(batchId));
      this.controller = new AbortController();
      let response;
      try {
        response = await post(this.url, data, { signal: this.controller.signal });
      } catch (err) {
        if (this.cancelled) return { cancelled: true };
        failures += 1;
        if (failures > NETWORK_RETRIES) {
          return { fatal: true, message: 'The server could not be reached. Check your connection and try again.' };
        }
        await this.sleep(retryDelay(null, failures));
        continue;
      }
      if (response.ok) {
        await response.json().catch(() => ({}));
        return { ok: true };
      }
      if (response.status === 429 || response.status === 503) {
        waits += 1;
        this.waits += 1;
        if (waits > MAX_WAITS) return { fatal: true, message: 'The server stayed busy; try again later.' };
        const ms = retryDelay(response, waits);
        this.onProgress(`Server busy: waiting ${Math.ceil(ms / 1000)} s as it asks…`);
        await this.sleep(ms);
        continue;
      }
      const body = await response.json().catch(() => ({}));
      const error = body.error || {};
      const message = error.message || `HTTP ${response.status}`;
      const imageProblem = [400, 413, 415].includes(response.status) && !REQUEST_ERRORS.includes(error.code);
      if (imageProblem && error.code) return { refused: true, message };
      return { fatal: true, message };
    }
  }

  /** Wait ``ms``; only Cancel ends the wait sooner (Resume does not, so a
   * Retry-After is always honoured). */
  sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /** Hold the next request while paused; Resume or Cancel lets it go. */
  async whilePaused() {
    while (this.paused && !this.cancelled) {
      await new Promise((resolve) => { this.resume = resolve; });
    }
  }

  release(name) {
    const wake = this[name];
    this[name] = null;
    if (wake) wake();
  }
}
