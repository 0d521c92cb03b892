// A spec-shaped stand-in for navigator.serial, injected with Playwright's addInitScript.
//
// Headless Chromium has Web Serial but its port chooser cannot be driven, so this fake
// takes its place. It is faithful where the app could go wrong: real ReadableStream /
// WritableStream objects, close() refusing locked streams, open() refusing an open port,
// requestPort() rejecting with NotFoundError when the chooser is dismissed, and an unplug
// that errors the pending read with a NetworkError DOMException. The bytes go to a real
// simulated device: `fota sim --ws` over a WebSocket (binary messages both ways).
//
// Test hooks on window.__fakeSerial: dismiss (make the chooser fail), busy (make open()
// fail as when another program has the port), unplug() (pull the cable), opens (the
// options of every open()), written (bytes written).

export function installFakeSerial({ wsUrl }) {
  const hooks = { dismiss: false, busy: false, opens: [], written: 0, closes: 0, lockedCloses: 0 };
  window.__fakeSerial = hooks;
  const ports = [];
  const serial = new EventTarget();
  serial.onconnect = null;
  serial.ondisconnect = null;

  function connectWs(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new DOMException('Failed to open serial port.', 'NetworkError'));
    });
  }

  class FakeSerialPort extends EventTarget {
    constructor() {
      super();
      this.onconnect = null;
      this.ondisconnect = null;
      this._ws = null;
      this._readable = null;
      this._writable = null;
      this._rx = null; // the readable's controller
      this._open = false;
    }

    getInfo() { return { usbVendorId: 0x1209, usbProductId: 0xf07a }; }
    get readable() { return this._readable; }
    get writable() { return this._writable; }
    get connected() { return true; }

    async open(options) {
      if (!options || typeof options.baudRate !== 'number' || options.baudRate <= 0) {
        throw new TypeError("Failed to execute 'open' on 'SerialPort': baudRate is required.");
      }
      if (this._open) throw new DOMException('The port is already open.', 'InvalidStateError');
      if (hooks.busy) throw new DOMException('Failed to open serial port.', 'NetworkError');
      hooks.opens.push({ baudRate: options.baudRate, bufferSize: options.bufferSize });
      // The device stays plugged in across close()/open() (a baud change): keep the socket.
      if (!this._ws || this._ws.readyState > 1) {
        const ws = await connectWs(wsUrl);
        ws.onmessage = (ev) => {
          if (this._rx) this._rx.enqueue(new Uint8Array(ev.data));
        };
        ws.onclose = () => this._lost();
        this._ws = ws;
      }
      this._open = true;
      const port = this;
      this._readable = new ReadableStream({
        start(c) { port._rx = c; },
        cancel() { port._rx = null; },
      });
      this._writable = new WritableStream({
        write(chunk) {
          if (!port._ws || port._ws.readyState !== 1) {
            throw new DOMException('The device has been lost.', 'NetworkError');
          }
          const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
          hooks.written += bytes.length;
          port._ws.send(bytes);
        },
      });
    }

    async close() {
      if (!this._open && !this._lostOpen) throw new DOMException('The port is already closed.', 'InvalidStateError');
      hooks.closes += 1;
      if ((this._readable && this._readable.locked) || (this._writable && this._writable.locked)) {
        hooks.lockedCloses += 1;
        throw new TypeError("Failed to execute 'close' on 'SerialPort': Cannot cancel a locked stream");
      }
      if (this._readable) await this._readable.cancel().catch(() => {});
      if (this._writable) await this._writable.abort().catch(() => {});
      this._open = false;
      this._lostOpen = false;
      this._readable = null;
      this._writable = null;
      this._rx = null;
    }

    async forget() {
      if (this._ws) this._ws.close();
      const i = ports.indexOf(this);
      if (i >= 0) ports.splice(i, 1);
    }

    // The device went away: pending reads reject with NetworkError, the streams die.
    _lost() {
      this._ws = null;
      if (!this._open) return;
      const err = new DOMException('The device has been lost.', 'NetworkError');
      if (this._rx) { try { this._rx.error(err); } catch (_) { /* already closed */ } }
      this._rx = null;
      this._open = false;
      this._lostOpen = true;
      this._readable = null;
      const ev = new Event('disconnect', { bubbles: true });
      this.dispatchEvent(ev);
      serial.dispatchEvent(new Event('disconnect'));
    }
  }

  serial.requestPort = async () => {
    if (hooks.dismiss) throw new DOMException('No port selected by the user.', 'NotFoundError');
    // The same device gives the same SerialPort object while the page knows it.
    if (ports.length === 0) ports.push(new FakeSerialPort());
    return ports[0];
  };
  serial.getPorts = async () => ports.slice();
  hooks.unplug = () => { for (const p of ports) if (p._ws) p._ws.close(); };

  Object.defineProperty(Navigator.prototype, 'serial', { get() { return serial; }, configurable: true });
}
