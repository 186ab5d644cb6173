"""sipp with RTP both ways, for the bench's concurrent-calls phase and its tests.

Both ends stream a looped G.711 mu-law tone with sipp's `rtp_stream` action (sipp built with RTPSTREAM, as
Debian's `sip-tester` is): each call gets its own RTP socket from sipp (`[rtpstream_audio_port]` in the SDP),
one packet of 160 bytes every 20 ms, until the call ends.  sipp takes the far end's media address from the SDP
it receives.  The UAC follows the Record-Route of the 200 (the SIP edge is a proxy); the UAS answers at once
(100, 180, 200) and waits for the BYE.

sipp 3.6.1 gives `[rtpstream_audio_port]` the value of `-mp` for every call and never reads that socket (no
`-rtp_echo`): what the switch sends to sipp is dropped by the kernel once the socket's buffer is full.  What
sipp sent is measured at the switch, whose legs count every packet (`switch.worker.rtpstat`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from switch.tools.bench.sipp import uac_scenario

TONE_HZ = 400  # a whole number of cycles per second: the looped file has no seam
PACKETS_PER_SECOND = 50  # 20 ms of PCMU each


def ulaw_encode(samples: np.ndarray) -> bytes:
    """16-bit linear samples as G.711 mu-law bytes (the segment/mantissa form, bias 0x84, clipped at 32635)."""
    x = samples.astype(np.int32)
    sign = (x < 0).astype(np.int32) << 7
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes())


def write_tone(path: Path, seconds: int = 1, amplitude: float = 8000.0) -> Path:
    """A raw mu-law tone file (`TONE_HZ`, 8 kHz) for `rtp_stream`: `seconds` whole seconds, so it loops cleanly."""
    t = np.arange(8000 * seconds) / 8000.0
    path.write_bytes(ulaw_encode(np.round(amplitude * np.sin(2 * np.pi * TONE_HZ * t))))
    return path


_SDP = """      v=0
      o=sipp 2000 1 IN IP[media_ip_type] [media_ip]
      s=softswitch-bench
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv
"""


def uac_rtp_scenario(prefix: str, tone: Path) -> str:
    """INVITE (PCMU at sipp's per-call RTP port), 200, ACK along the Record-Route, the tone both ways for `-d`
    milliseconds, BYE: `switch.tools.bench.sipp.uac_scenario` (its From user `<prefix><call number>`) with this
    offer and the stream started after the ACK."""
    stream = f'  <nop><action><exec rtp_stream="{tone},-1,0" /></action></nop>\n'
    return uac_scenario(prefix, sdp=_SDP, after_ack=stream, name="softswitch bench uac with rtp")


def uas_rtp_scenario(tone: Path) -> str:
    """Answer every INVITE at once (180, then 200 with PCMU at sipp's per-call RTP port 50 ms later), stream the tone
    from the ACK on, answer the BYE.  Responses carry the INVITE's Record-Route (the SIP edge may be in the path).

    The 50 ms of ringing are there because the edge is in the path: Kamailio reads UDP in several processes, and a
    200 sent right behind its 180 can overtake it there; pjsip then drops the late 180 as a stray and the child
    leg never rings (no `ringing` callback), which is right for the switch but makes the bench's callback count
    depend on the scheduler."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="softswitch bench uas with rtp">
  <recv request="INVITE" crlf="true" />
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:bench@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="50" />
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:bench@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{_SDP}
    ]]>
  </send>
  <recv request="ACK" crlf="true" />
  <nop><action><exec rtp_stream="{tone},-1,0" /></action></nop>
  <recv request="BYE" />
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:bench@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""
