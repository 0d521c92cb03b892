// A spec-shaped stand-in for navigator.serial, injected with Playwright's addInitScript.
//
// Headless Chromium has Web Serial but its port chooser cannot be driven, so this fake
// takes its place. It is faithful where the app could go wrong: real ReadableStream /
// WritableStream objects, close() refusing locked streams, open() refusing an open port,
// requestPort() rejecting with NotFoundError when the chooser is dismissed, and an unplug
// that errors the pending read with a NetworkError DOMException. The bytes go to a real
// simulated device: `fota sim --ws` over a WebSocket (binary messages both ways).
//
// With `reenumerateOnRestart: true` the device behind the port is a native-USB one that
// re-enumerates when it resets: as soon as it has sent its reply to Restart (or printed
// its boot banner "boot: " after a reset of its own, a watchdog), the SerialPort object
// dies (the pending read rejects with a NetworkError DOMException, writes fail, open()
// fails, getPorts() no longer lists it, `disconnect` fires) and `reenumerateDelayMs`
// (300) later a NEW SerialPort object with the same getInfo() appears in getPorts()
// (`connect` fires), wired to the same simulated device (a new WebSocket to the same
// `fota sim --ws`, which keeps its flash).
//
// Test hooks on window.__fakeSerial: dismiss (make the chooser fail), busy (make open()
// fail as when another program has the port), unplug() (pull the cable), opens (the
// options of every open(), with the id of the port object opened: 0 for the first,
// 1 for the one that came back after the first re-enumeration, ...), written (bytes
// written), getPortsCalls, reenumerations (one { port, why } per port object that died),
// events (connect / disconnect, in order, with the port id).

export function installFakeSerial({ wsUrl, reenumerateOnRestart = false, reenumerateDelayMs = 300 }) {
  const hooks = {
    dismiss: false, busy: false, opens: [], written: 0, closes: 0, lockedCloses: 0,
    getPortsCalls: 0, reenumerations: [], events: [],
  };
  window.__fakeSerial = hooks;
  const ports = [];
  const serial = new EventTarget();
  serial.onconnect = null;
  serial.ondisconnect = null;
  let nextPortId = 0;
  // When the last port object died of a device reset: the boot banner of that same reset
  // (the simulated device boots in 200 ms) must not kill the port that replaced it; a
  // watchdog reset comes seconds later.
  let lastDeathAt = -Infinity;
  const SAME_RESET_MS = 1000;
  const REPLY_RESTARTING = 0x09 | 0x80;

  function fire(type, port) {
    hooks.events.push({ type, port: port.id });
    port.dispatchEvent(new Event(type, { bubbles: true }));
    const ev = new Event(type);
    serial.dispatchEvent(ev);
    const handler = serial[`on${type}`];
    if (typeof handler === 'function') handler.call(serial, ev);
  }

  // CRC-32/ISO-HDLC, as the protocol's frames carry it.
  const crcTable = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  function crc32(bytes) {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }
  function cobsDecode(enc) {
    const out = [];
    let i = 0;
    while (i < enc.length) {
      const code = enc[i++];
      if (code === 0) return null;
      for (let k = 1; k < code; k++) {
        if (i >= enc.length) return null;
        out.push(enc[i++]);
      }
      if (code < 0xff && i < enc.length) out.push(0);
    }
    return out;
  }
  // Whether the bytes between two zeros are a Restarting reply: id:u16 op:u8 crc:u32.
  function isRestarting(enc) {
    const f = cobsDecode(enc);
    if (!f || f.length !== 7 || f[2] !== REPLY_RESTARTING) return false;
    const crc = (f[3] | (f[4] << 8) | (f[5] << 16) | (f[6] << 24)) >>> 0;
    return crc === crc32(f.slice(0, 3));
  }

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
      this.id = nextPortId++;
      this.onconnect = null;
      this.ondisconnect = null;
      this._ws = null;
      this._readable = null;
      this._writable = null;
      this._rx = null; // the readable's controller
      this._open = false;
      this._dead = false; // re-enumerated away: this object never works again
      this._tx = null; // the writable's controller
      this._frame = []; // device bytes since the last zero (a frame being received)
      this._text = ''; // the last few device bytes, as text
      this._written = 0;
    }

    getInfo() { return { usbVendorId: 0x1209, usbProductId: 0xf07a }; }
    get readable() { return this._readable; }
    get writable() { return this._writable; }
    get connected() { return !this._dead; }

    async open(options) {
      if (!options || typeof options.baudRate !== 'number' || options.baudRate <= 0) {
        throw new TypeError("Failed to execute 'open' on 'SerialPort': baudRate is required.");
      }
      if (this._open) throw new DOMException('The port is already open.', 'InvalidStateError');
      if (this._dead) throw new DOMException('Failed to open serial port.', 'NetworkError');
      if (hooks.busy) throw new DOMException('Failed to open serial port.', 'NetworkError');
      hooks.opens.push({ baudRate: options.baudRate, bufferSize: options.bufferSize, port: this.id });
      // The device stays plugged in across close()/open() (a baud change): keep the socket.
      if (!this._ws || this._ws.readyState > 1) {
        const ws = await connectWs(wsUrl);
        if (this._dead) { ws.close(); throw new DOMException('Failed to open serial port.', 'NetworkError'); }
        ws.onmessage = (ev) => this._fromDevice(new Uint8Array(ev.data));
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
        start(c) { port._tx = c; },
        write(chunk) {
          if (port._dead || !port._ws || port._ws.readyState !== 1) {
            throw new DOMException('The device has been lost.', 'NetworkError');
          }
          const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
          hooks.written += bytes.length;
          port._written += bytes.length;
          port._ws.send(bytes);
        },
      });
    }

    // Bytes from the device, on their way to the readable.
    _fromDevice(bytes) {
      if (this._dead) return;
      let cut = -1; // bytes from here on are not delivered: the port dies there
      let why = null;
      if (reenumerateOnRestart) {
        for (let i = 0; i < bytes.length && cut < 0; i++) {
          const b = bytes[i];
          if (b === 0) {
            if (this._frame.length > 0 && this._frame.length <= 16 && isRestarting(this._frame)) {
              // The reply went out; the device resets right after it.
              cut = i + 1;
              why = 'restart';
            }
            this._frame = [];
          } else if (this._frame.length <= 16) {
            this._frame.push(b);
          }
          // A reset of its own (a watchdog): the boot banner is the first sign of it.
          this._text = (this._text + String.fromCharCode(b)).slice(-6);
          if (cut < 0 && this._text === 'boot: ' && this._written > 0
              && performance.now() - lastDeathAt > SAME_RESET_MS) {
            cut = i - 5 > 0 ? i - 5 : 0;
            why = 'boot';
          }
        }
      }
      const deliver = cut >= 0 ? bytes.subarray(0, cut) : bytes;
      if (this._rx && deliver.length > 0) this._rx.enqueue(deliver);
      if (cut >= 0) this._reenumerate(why);
    }

    // The device reset and left the USB bus: this object dies for good, and a new one for
    // the same device appears a little later.
    _reenumerate(why) {
      this._dead = true;
      lastDeathAt = performance.now();
      hooks.reenumerations.push({ port: this.id, why });
      const ws = this._ws;
      this._ws = null;
      if (ws) { ws.onmessage = null; ws.onclose = null; ws.close(); }
      const err = new DOMException('The device has been lost.', 'NetworkError');
      if (this._rx) { try { this._rx.error(err); } catch (_) { /* already closed */ } }
      if (this._tx) { try { this._tx.error(err); } catch (_) { /* already closed */ } }
      this._rx = null;
      this._tx = null;
      if (this._open) { this._open = false; this._lostOpen = true; }
      this._readable = null;
      this._writable = null;
      const i = ports.indexOf(this);
      if (i >= 0) ports.splice(i, 1);
      fire('disconnect', this);
      setTimeout(() => {
        const back = new FakeSerialPort();
        ports.push(back);
        fire('connect', back);
      }, reenumerateDelayMs);
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
      fire('disconnect', this);
    }
  }

  serial.requestPort = async () => {
    if (hooks.dismiss) throw new DOMException('No port selected by the user.', 'NotFoundError');
    // The same device gives the same SerialPort object while the page knows it.
    if (ports.length === 0) ports.push(new FakeSerialPort());
    return ports[0];
  };
  serial.getPorts = async () => { hooks.getPortsCalls += 1; return ports.slice(); };
  hooks.unplug = () => { for (const p of ports) if (p._ws) p._ws.close(); };

  Object.defineProperty(Navigator.prototype, 'serial', { get() { return serial; }, configurable: true });
}
