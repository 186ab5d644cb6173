"""pjsua2 helpers shared by the worker engine, the lab phone and the bench baselines (each owns a pjsua thread):
the endpoint's configuration, codec order, SIP transports, where RTP binds, and fast media-frame access.

`MediaAddress` is where a process's RTP binds and what its SDP and Contact advertise (the switch's `[media]`).
A worker sets it once, from its command line, with `configure_media` before its engine starts; the helpers
below then apply it to every SIP transport and account that does not name its own address.  The lab phone
and the baselines never set it and keep pjsua's defaults.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

from switch.worker.pjengine import pj

CLOCK_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = CLOCK_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2


# G.711 first (mu-law, then A-law), then RFC 2833 events; every other codec off.
CODEC_PRIORITY = {"PCMU/8000/1": 255, "PCMA/8000/1": 254, "telephone-event/8000/1": 253}


WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class MediaAddress:
    """Where RTP binds (`address`, None or a wildcard: every interface), what SDP's c= and the Contact carry
    instead behind NAT (`external_address`), and the UDP ports RTP and RTCP take (`first_port`..`last_port`)."""

    address: str | None = None
    external_address: str | None = None
    first_port: int = 10000
    last_port: int = 20000

    @property
    def bind(self) -> str | None:
        return None if self.address is None or self.address in WILDCARDS else self.address

    @property
    def public(self) -> str | None:
        """What SDP's c= carries: the external address, else the bind address (None: pjsua picks)."""
        return self.external_address or self.bind


_media: MediaAddress | None = None


def configure_media(media: MediaAddress) -> None:
    """Set this process's media address (a worker, once, before its engine starts)."""
    global _media
    _media = media


def media_transport_config(tcfg: pj.TransportConfig, media: MediaAddress) -> None:
    """Point an RTP TransportConfig at `media`: bound address, advertised address, port range."""
    if media.bind is not None:
        tcfg.boundAddress = media.bind
    if media.public is not None:
        tcfg.publicAddress = media.public
    tcfg.port = media.first_port
    tcfg.portRange = media.last_port - media.first_port


def endpoint_config(user_agent: str, log_level: int, frame_ms: int | None = None) -> pj.EpConfig:
    """One pjsua thread that polls itself (no worker threads), an 8 kHz bridge, no echo canceller, no VAD,
    and a null sound device that never closes: the set-up ARCHITECTURE.md measured."""
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = user_agent
    cfg.logConfig.level = log_level
    cfg.logConfig.consoleLevel = log_level
    med = cfg.medConfig
    med.clockRate = CLOCK_RATE
    med.sndClockRate = CLOCK_RATE
    if frame_ms is not None:
        med.audioFramePtime = frame_ms
    med.ecTailLen = 0
    med.noVad = True
    med.sndAutoCloseTime = -1
    return cfg


def set_codec_priorities(ep: pj.Endpoint, other_g711: int = 100) -> None:
    """`CODEC_PRIORITY`; other G.711 and telephone-event variants (other rates) get `other_g711`."""
    for codec in ep.codecEnum2():
        cid = codec.codecId
        fallback = other_g711 if cid.startswith(("PCMU", "PCMA", "telephone-event")) else 0
        ep.codecSetPriority(cid, CODEC_PRIORITY.get(cid, fallback))


def create_transport(ep: pj.Endpoint, kind: int, host: str | None, port: int) -> int:
    """A SIP transport on host:port (`host` None: every address), which is also the address it advertises
    (Via and Contact), unless `configure_media` gave an external address: then that one."""
    tcfg = pj.TransportConfig()
    tcfg.port = port
    if host is not None:
        tcfg.boundAddress = host
        tcfg.publicAddress = host
    if _media is not None and _media.external_address:
        tcfg.publicAddress = _media.external_address
    return int(ep.transportCreate(kind, tcfg))


def start_endpoint(ep: pj.Endpoint, user_agent: str, log_level: int, host: str, port: int) -> None:
    """Create and start the library with SIP UDP and TCP on host:port and the null sound device (the bench
    baselines; the engine and the lab phone bind their own way)."""
    ep.libCreate()
    ep.libInit(endpoint_config(user_agent, log_level))
    for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
        create_transport(ep, kind, host, port)
    ep.libStart()
    ep.audDevManager().setNullDev()
    set_codec_priorities(ep)


def local_account_config(uri: str, media_host: str | None) -> pj.AccountConfig:
    """An account that never registers, IPv4 RTP only, with its RTP bound to `media_host`; None: where
    `configure_media` said, or (never configured) every address."""
    acfg = pj.AccountConfig()
    acfg.idUri = uri
    acfg.regConfig.registrarUri = ""
    # Our SIP transports are IPv4 only.  Left at its default, pjsua picks the address family of every outgoing
    # call's RTP by resolving the host's own name (a DNS query for it, AAAA) and listing the interfaces twice:
    # ~1 ms on each dial, and traffic off loopback.
    acfg.mediaConfig.ipv6Use = pj.PJSUA_IPV6_DISABLED
    tcfg = acfg.mediaConfig.transportConfig
    if media_host is not None:
        tcfg.boundAddress = media_host
        tcfg.publicAddress = media_host
    elif _media is not None:
        media_transport_config(tcfg, _media)
    return acfg


def error_text(exc: pj.Error) -> str:
    # str(pj.Error) is empty; info() carries the reason.
    try:
        return str(exc.info())
    except Exception:  # pragma: no cover - defensive: info() itself failing
        return repr(exc)


# -- reading frames fast ----------------------------------------------------------------------------------
# MediaFrame.buf is a SWIG proxy of std::vector<unsigned char>; bytes() on it goes element by element through
# the iterator protocol (~250 us per 320-byte frame here).  libstdc++ lays a vector out as three pointers
# (begin, end, end of storage), and int(proxy.this) is the vector's address, so two pointer reads and one
# ctypes.string_at copy the frame in ~5 us.  The layout is checked once on a vector we built ourselves; if it
# does not match, frame_bytes() falls back to the slow copy.
_VECTOR_HEAD = ctypes.c_size_t * 2


def _vector_probe() -> bool:
    try:
        probe = pj.ByteVector()
        pattern = bytes(range(1, 40))
        for value in pattern:
            probe.push_back(value)
        begin, end = _VECTOR_HEAD.from_address(int(probe.this))
        return bool(end - begin == len(pattern) and ctypes.string_at(begin, end - begin) == pattern)
    except Exception:  # pragma: no cover - any surprise means: use the slow path
        return False


_FAST_VECTOR = _vector_probe()


def frame_bytes(frame: pj.MediaFrame) -> bytes:
    """The payload of a pjsua2 ``MediaFrame`` as bytes, read from the vector's memory when the layout allows."""
    buf = frame.buf
    if _FAST_VECTOR:
        begin, end = _VECTOR_HEAD.from_address(int(buf.this))
        return ctypes.string_at(begin, end - begin) if end > begin else b""
    return bytes(buf)


def destroy(obj: Any) -> None:
    """Destroy a pjsua2 media object now, on this (the pjsua) thread, rather than when Python collects it."""
    destroy = getattr(type(obj), "__swig_destroy__", None)
    if destroy is not None and getattr(obj, "thisown", False):
        destroy(obj)
        obj.thisown = False



def pcm_format() -> pj.MediaFormatAudio:
    """8 kHz, mono, 16-bit, 20 ms frames: the bridge's own format."""
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, FRAME_MS * 1000, 16)
    return fmt
