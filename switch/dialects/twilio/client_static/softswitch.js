/*
 * softswitch.js: the browser softphone library of the softswitch (no build step, one file).
 *
 * It talks JSON over one WebSocket (`/client/ws` on the page's own host unless `wsUrl` says otherwise) and carries
 * each call's audio in its own RTCPeerConnection.  The browser always makes the SDP offer, and only once ICE
 * gathering has finished (no trickle): the server answers with every candidate already in its SDP.
 *
 *   const device = new Softswitch.Device(token, {codecPreferences: ['opus']});
 *   device.on('incoming', (call) => call.accept());
 *   await device.register();                                  // resolves once the server said "ready"
 *   const call = await device.connect({params: {To: '+15551234'}});
 *   call.on('accept', () => call.sendDigits('12#'));
 *   call.on('disconnect', () => console.log('over'));
 *
 * Device events: 'registered', 'unregistered', 'error' (an Error with .code), 'incoming' (a Call), and 'call'
 * (every Call the device creates, incoming or outgoing: handy for a page that tracks them all).
 * Call events: 'accept' (media flows), 'disconnect' (once, when either side ended an accepted or outgoing call),
 * 'cancel' (an incoming call ended by the server before it was accepted), 'reject' (after reject()),
 * 'mute' (muted: boolean), 'error' (an Error with .code).
 *
 * Device options: codecPreferences (['opus'] or ['pcmu'], preferred first; codecExclusive: true drops the
 * others), wsUrl, iceServers (none by default: host candidates only), iceFilter ('loopback' keeps only the
 * UDP 127.0.0.1 / ::1 candidates in the offer, or a function (candidateLine) => boolean), gatherTimeoutMs (5000).
 */
(function (global) {
  'use strict';

  /** A small event emitter: on/off/once and a private emit. */
  class Emitter {
    constructor() {
      this._handlers = new Map();
    }

    on(name, fn) {
      if (!this._handlers.has(name)) this._handlers.set(name, []);
      this._handlers.get(name).push(fn);
      return this;
    }

    off(name, fn) {
      const list = this._handlers.get(name) || [];
      this._handlers.set(name, list.filter((f) => f !== fn));
      return this;
    }

    once(name, fn) {
      const wrapper = (...args) => {
        this.off(name, wrapper);
        fn(...args);
      };
      return this.on(name, wrapper);
    }

    _emit(name, ...args) {
      for (const fn of [...(this._handlers.get(name) || [])]) {
        try {
          fn(...args);
        } catch (err) {
          setTimeout(() => { throw err; });  // a listener's fault must not break the library
        }
      }
    }
  }

  function makeError(code, message) {
    const err = new Error(message || `error ${code}`);
    err.code = code;
    return err;
  }

  /** The `exp` claim (seconds since the epoch) of a JWT access token, or null if it has none. */
  function tokenExpiry(token) {
    try {
      const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const exp = JSON.parse(global.atob(part + '='.repeat((4 - part.length % 4) % 4))).exp;
      return typeof exp === 'number' ? exp : null;
    } catch (err) {
      return null;
    }
  }

  function defaultWsUrl() {
    const scheme = global.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${global.location.host}/client/ws`;
  }

  /** Reorder a transceiver's codecs: the named ones (e.g. 'opus', 'pcmu') first, in the order given. */
  function preferCodecs(transceiver, names, exclusive) {
    if (!names || !names.length || typeof transceiver.setCodecPreferences !== 'function') return;
    const caps = global.RTCRtpReceiver.getCapabilities('audio');
    if (!caps) return;
    const wanted = names.map((n) => `audio/${String(n).toLowerCase()}`);
    const rank = (codec) => {
      const i = wanted.indexOf(codec.mimeType.toLowerCase());
      return i < 0 ? wanted.length : i;
    };
    let codecs = caps.codecs.map((codec, i) => ({codec, i})).sort((a, b) => rank(a.codec) - rank(b.codec) || a.i - b.i)
      .map((x) => x.codec);
    if (exclusive) {
      const keep = ['audio/telephone-event'];
      codecs = codecs.filter((c) => rank(c) < wanted.length || keep.includes(c.mimeType.toLowerCase()));
    }
    transceiver.setCodecPreferences(codecs);
  }

  function loopbackCandidate(line) {
    const parts = line.replace(/^a=/, '').split(' ');
    const address = parts[4] || '';
    return parts[2] && parts[2].toLowerCase() === 'udp' && (address === '127.0.0.1' || address === '::1');
  }

  /** Keep only the candidate lines the filter accepts ('loopback' or a function of the `a=candidate:` line). */
  function filterCandidates(sdp, filter) {
    if (!filter) return sdp;
    const accept = filter === 'loopback' ? loopbackCandidate : filter;
    return sdp.split('\r\n').filter((line) => !line.startsWith('a=candidate:') || accept(line)).join('\r\n');
  }

  function waitForGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener('icegatheringstatechange', check);
        clearTimeout(timer);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const timer = setTimeout(done, timeoutMs);  // send what was gathered rather than hang
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  /**
   * A peer connection sending `localStream`'s audio, with its offer made and ICE gathered.
   * Resolves to {pc, sdp} (the SDP to send: the local description, candidates filtered as asked).
   */
  async function offerPeer(localStream, options = {}) {
    const pc = new RTCPeerConnection({iceServers: options.iceServers || []});
    const track = localStream.getAudioTracks()[0];
    const transceiver = pc.addTransceiver(track, {direction: 'sendrecv', streams: [localStream]});
    preferCodecs(transceiver, options.codecPreferences, options.codecExclusive);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitForGathering(pc, options.gatherTimeoutMs || 5000);
    return {pc, sdp: filterCandidates(pc.localDescription.sdp, options.iceFilter)};
  }

  /**
   * Measures a stream's audio with an AnalyserNode: the dominant frequency between 100 and 3500 Hz and an RMS
   * level (0..1).  read() gives {hz, level}; hz is 0 while the level is below silence.
   */
  class AudioMeter {
    constructor(stream, context) {
      this.context = context || new (global.AudioContext || global.webkitAudioContext)();
      if (this.context.state === 'suspended') this.context.resume().catch(() => {});
      this.source = this.context.createMediaStreamSource(stream);
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 8192;
      this.analyser.smoothingTimeConstant = 0;
      this.source.connect(this.analyser);
      this._freq = new Float32Array(this.analyser.frequencyBinCount);
      this._time = new Float32Array(this.analyser.fftSize);
    }

    read() {
      this.analyser.getFloatTimeDomainData(this._time);
      let sum = 0;
      for (const v of this._time) sum += v * v;
      const level = Math.sqrt(sum / this._time.length);
      if (level < 0.001) return {hz: 0, level: round(level, 4)};
      this.analyser.getFloatFrequencyData(this._freq);
      const binHz = this.context.sampleRate / this.analyser.fftSize;
      const lo = Math.ceil(100 / binHz);
      const hi = Math.min(Math.floor(3500 / binHz), this._freq.length - 2);
      let best = lo;
      for (let i = lo; i <= hi; i++) if (this._freq[i] > this._freq[best]) best = i;
      // a parabola through the peak and its neighbours (in dB) places the tone between bins
      const [a, b, c] = [this._freq[best - 1], this._freq[best], this._freq[best + 1]];
      const denom = a - 2 * b + c;
      const shift = Number.isFinite(denom) && denom !== 0 ? Math.max(-0.5, Math.min(0.5, 0.5 * (a - c) / denom)) : 0;
      return {hz: round((best + shift) * binHz, 1), level: round(level, 4)};
    }

    close() {
      try { this.source.disconnect(); } catch (err) { /* already gone */ }
    }
  }

  function round(x, digits) {
    const f = 10 ** digits;
    return Math.round(x * f) / f;
  }

  let nextId = 1;

  /** One call: outgoing (Device.connect) or incoming (the 'incoming' event). */
  class Call extends Emitter {
    constructor(device, {direction, callSid, from, to, params}) {
      super();
      this.device = device;
      this.direction = direction;  // 'OUTGOING' | 'INCOMING'
      this.id = `c${nextId++}-${Math.random().toString(36).slice(2, 8)}`;
      this.parameters = {CallSid: callSid || null, From: from || '', To: to || ''};
      this.customParameters = new Map(Object.entries(params || {}));
      this._status = direction === 'INCOMING' ? 'pending' : 'connecting';
      this._accepted = false;
      this._ended = false;
      this._pc = null;
      this._localStream = null;
      this._remoteStream = null;
      this._audio = null;
    }

    get callSid() { return this.parameters.CallSid; }

    /** 'pending' (incoming, not taken), 'connecting', 'open', 'closed'. */
    status() { return this._status; }

    remoteStream() { return this._remoteStream; }

    localStream() { return this._localStream; }

    peerConnection() { return this._pc; }

    /** Take an incoming call: the browser offers, the server answers, then 'accept'. */
    async accept() {
      if (this.direction !== 'INCOMING' || this._status !== 'pending') return;
      this._status = 'connecting';
      this._accepted = true;
      try {
        const sdp = await this._prepareMedia();
        if (this._ended) return;
        this.device._send({type: 'accept', callSid: this.callSid, sdp});
      } catch (err) {
        this._fail(makeError(31402, `could not start media: ${err.message || err}`), true);
      }
    }

    /** Refuse an incoming call. */
    reject() {
      if (this.direction !== 'INCOMING' || this._status !== 'pending') return;
      this.device._send({type: 'reject', callSid: this.callSid});
      this._finish('reject');
    }

    /** Send DTMF digits (0-9, *, #, A-D, w) through the signalling channel. */
    sendDigits(digits) {
      const text = String(digits);
      if (!/^[0-9A-Da-d*#w]+$/.test(text)) throw makeError(31000, `not DTMF digits: ${text}`);
      if (this._status !== 'open') throw makeError(31000, 'the call is not connected');
      this.device._send({type: 'dtmf', callSid: this.callSid, digits: text});
    }

    /** Mute (true) or unmute (false) the microphone: a disabled track sends silence. */
    mute(shouldMute = true) {
      const muted = Boolean(shouldMute);
      this._muted = muted;
      if (this._localStream) for (const t of this._localStream.getAudioTracks()) t.enabled = !muted;
      this._emit('mute', muted, this);
    }

    isMuted() { return Boolean(this._muted); }

    /** Hang up (or, for an incoming call not yet taken, refuse it). */
    disconnect() {
      if (this._ended) return;
      if (this.direction === 'INCOMING' && this._status === 'pending') {
        this.reject();
        return;
      }
      if (this.callSid) this.device._send({type: 'hangup', callSid: this.callSid});
      this._finish('disconnect');
    }

    async _prepareMedia() {
      this._localStream = await global.navigator.mediaDevices.getUserMedia({audio: true});
      if (this._muted) for (const t of this._localStream.getAudioTracks()) t.enabled = false;
      const {pc, sdp} = await offerPeer(this._localStream, this.device.options);
      this._pc = pc;
      pc.addEventListener('track', (event) => this._onTrack(event));
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'failed' && !this._ended) {
          this._fail(makeError(53405, 'media connection failed'), true);
        }
      });
      return sdp;
    }

    _onTrack(event) {
      const stream = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      this._remoteStream = stream;
      if (!this._audio) {
        // Chrome hands remote WebRTC audio to WebAudio only while a media element plays it too
        this._audio = new Audio();
        this._audio.autoplay = true;
      }
      this._audio.srcObject = stream;
      this._audio.play().catch(() => {});
      this._emit('track', stream, this);
    }

    async _onAnswer(msg) {
      if (this._ended || !this._pc) return;
      if (msg.callSid) this.parameters.CallSid = msg.callSid;
      try {
        await this._pc.setRemoteDescription({type: 'answer', sdp: msg.sdp});
      } catch (err) {
        this._fail(makeError(31400, `bad answer: ${err.message || err}`), true);
        return;
      }
      if (this._ended) return;
      this._status = 'open';
      this._accepted = true;
      this._emit('accept', this);
    }

    _onHangup(msg) {
      if (this._ended) return;
      this.endStatus = msg.status || '';
      if (this.direction === 'INCOMING' && !this._accepted) this._finish('cancel');
      else this._finish('disconnect');
    }

    _fail(err, hangUp) {
      if (this._ended) return;
      this._emit('error', err, this);
      if (hangUp && this.callSid) this.device._send({type: 'hangup', callSid: this.callSid});
      this._finish('disconnect');
    }

    _finish(eventName) {
      if (this._ended) return;
      this._ended = true;
      this._status = 'closed';
      if (this._localStream) for (const t of this._localStream.getTracks()) t.stop();
      if (this._pc) this._pc.close();
      if (this._audio) {
        this._audio.pause();
        this._audio.srcObject = null;
      }
      this.device._forget(this);
      this._emit(eventName, this);
    }
  }

  /** The softphone: one signalling WebSocket, registration, and the calls made or taken through it. */
  class Device extends Emitter {
    constructor(token, options = {}) {
      super();
      this.token = token;
      this.options = {tokenRefreshMs: 10000, ...options};
      this.identity = null;
      this._tokenTimer = null;
      this.state = 'unregistered';  // 'registering' | 'registered' | 'unregistered' | 'destroyed'
      this._ws = null;
      this._opening = null;
      this._calls = new Set();
      this._onPageHide = () => this.destroy();  // leaving the page hangs up (the server would see the close anyway)
    }

    /** The calls not yet over. */
    get calls() { return [...this._calls]; }

    /** The most recent call not yet over, or null. */
    activeCall() {
      const calls = this.calls;
      return calls.length ? calls[calls.length - 1] : null;
    }

    /** A new token for the same identity: the switch takes it at once (and registers again after an expiry). */
    updateToken(token) {
      this.token = token;
      this._send({type: 'token', token});
      this._warnBeforeExpiry();
    }

    /** 'tokenWillExpire' tokenRefreshMs before the token's exp, as Twilio's Device emits it. */
    _warnBeforeExpiry() {
      clearTimeout(this._tokenTimer);
      const exp = tokenExpiry(this.token);
      if (exp === null) return;
      const delay = Math.max(0, exp * 1000 - Date.now() - this.options.tokenRefreshMs);
      this._tokenTimer = setTimeout(() => this._emit('tokenWillExpire', this), delay);
    }

    /** Open the WebSocket and say hello; resolves once the server answered "ready". */
    register() {
      if (this.state === 'registered') return Promise.resolve();
      if (this._opening) return this._opening;
      this.state = 'registering';
      global.addEventListener('pagehide', this._onPageHide);
      this._opening = new Promise((resolve, reject) => {
        let settled = false;
        const ws = new WebSocket(this.options.wsUrl || defaultWsUrl());
        this._ws = ws;
        ws.addEventListener('open', () => ws.send(JSON.stringify({type: 'hello', token: this.token})));
        ws.addEventListener('message', (event) => {
          let msg;
          try {
            msg = JSON.parse(event.data);
          } catch (err) {
            return;
          }
          if (!settled && msg.type === 'ready') {
            settled = true;
            this.identity = msg.identity;
            this.state = 'registered';
            resolve();
            this._warnBeforeExpiry();
            this._emit('registered');
            return;
          }
          if (!settled && msg.type === 'error' && msg.id === undefined && msg.callSid === undefined) {
            settled = true;
            const err = makeError(msg.code, msg.message);
            reject(err);
            this._emit('error', err);
            return;
          }
          this._onMessage(msg);
        });
        ws.addEventListener('close', (event) => {
          if (!settled) {
            settled = true;
            reject(makeError(31005, `signalling closed (${event.code})`));
          }
          this._onClose(ws);
        });
      });
      this._opening.catch(() => {}).then(() => { this._opening = null; });
      return this._opening;
    }

    /** Place a call to the token's outgoing application; resolves to the Call once the offer is sent. */
    async connect({params = {}} = {}) {
      if (this.state !== 'registered') await this.register();
      const call = new Call(this, {direction: 'OUTGOING', to: params.To || '', params});
      this._calls.add(call);
      this._emit('call', call);
      let sdp;
      try {
        sdp = await call._prepareMedia();
      } catch (err) {
        call._fail(makeError(31402, `could not start media: ${err.message || err}`), false);
        throw err;
      }
      if (!call._ended) {
        const strParams = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
        this._send({type: 'call', id: call.id, params: strParams, sdp});
      }
      return call;
    }

    /** Hang up every call and close the WebSocket. */
    destroy() {
      clearTimeout(this._tokenTimer);
      for (const call of this.calls) call.disconnect();
      global.removeEventListener('pagehide', this._onPageHide);
      if (this._ws) this._ws.close(1000);
      this.state = 'destroyed';
    }

    unregister() {
      this.destroy();
      return Promise.resolve();
    }

    _send(msg) {
      if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(msg));
    }

    _forget(call) { this._calls.delete(call); }

    _find(msg) {
      for (const call of this._calls) {
        if ((msg.id !== undefined && call.id === msg.id) || (msg.callSid && call.callSid === msg.callSid)) return call;
      }
      return null;
    }

    _onMessage(msg) {
      const call = this._find(msg);
      switch (msg.type) {
        case 'incoming': {
          const incoming = new Call(this, {direction: 'INCOMING', callSid: msg.callSid, from: msg.from, to: msg.to,
            params: msg.params});
          this._calls.add(incoming);
          this._emit('call', incoming);
          this._emit('incoming', incoming);
          break;
        }
        case 'answer':
          if (call) call._onAnswer(msg);
          break;
        case 'hangup':
          if (call) call._onHangup(msg);
          break;
        case 'ready':  // the answer to updateToken
          if (this.state === 'unregistered') {
            this.state = 'registered';
            this._emit('registered');
          }
          break;
        case 'error':
          if (call) {
            call._fail(makeError(msg.code, msg.message), false);
            break;
          }
          this._emit('error', makeError(msg.code, msg.message));
          if (msg.code === 20104 && msg.id === undefined && this.state === 'registered') {
            this.state = 'unregistered';  // the token expired: calls in progress go on, no new ones
            this._emit('unregistered');
          }
          break;
        default:
          break;
      }
    }

    _onClose(ws) {
      if (ws !== this._ws) return;
      this._ws = null;
      const wasRegistered = this.state === 'registered';
      if (this.state !== 'destroyed') this.state = 'unregistered';
      for (const call of this.calls) call._onHangup({status: 'failed'});
      if (wasRegistered) this._emit('unregistered');
    }
  }

  global.Softswitch = {Device, Call, AudioMeter, offerPeer, preferCodecs, filterCandidates, version: '1'};
})(window);
