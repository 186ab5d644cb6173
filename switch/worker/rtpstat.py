"""A leg's RTP statistics: read from pjmedia when one of its audio streams ends, summed over its streams.

pjsua2 calls `Call.onStreamDestroyed` with the stream still alive, on every path that ends one: the far end's
BYE (from `pjsua_media_channel_deinit`, before `onCallState(DISCONNECTED)`), our own hangup (the same function,
called by `pjsua_call_hangup` before it marks the call as hanging up) and a media change (a re-INVITE that moves
the audio stops the old stream and starts a new one).  `Call.getStreamStat` still answers inside that callback,
so the numbers are the stream's final ones; the `Ended` event carries their sum (`switch.workers.protocol`).
"""

from __future__ import annotations

from typing import Any

from switch.workers.protocol import RtpStats


def stream_stats(stat: Any) -> RtpStats:
    """One stream's figures from a pjsua2 `StreamStat` (its RTCP rx/tx counters and its jitter buffer)."""
    rx, tx, jb = stat.rtcp.rxStat, stat.rtcp.txStat, stat.jbuf
    return RtpStats(streams=1, rx_packets=int(rx.pkt), rx_lost=int(rx.loss), rx_discarded=int(rx.discard),
                    rx_reordered=int(rx.reorder), rx_duplicates=int(rx.dup),
                    rx_jitter_max_us=max(0, int(rx.jitterUsec.max)) if int(rx.jitterUsec.n) > 0 else 0,
                    tx_packets=int(tx.pkt), jb_lost=int(jb.lost), jb_discarded=int(jb.discard),
                    jb_empty=int(jb.empty))


def add_stats(total: RtpStats | None, more: RtpStats) -> RtpStats:
    """`total` and `more` summed (the jitter: the larger); `more` alone when there is no total yet."""
    if total is None:
        return more
    return RtpStats(streams=total.streams + more.streams, rx_packets=total.rx_packets + more.rx_packets,
                    rx_lost=total.rx_lost + more.rx_lost, rx_discarded=total.rx_discarded + more.rx_discarded,
                    rx_reordered=total.rx_reordered + more.rx_reordered,
                    rx_duplicates=total.rx_duplicates + more.rx_duplicates,
                    rx_jitter_max_us=max(total.rx_jitter_max_us, more.rx_jitter_max_us),
                    tx_packets=total.tx_packets + more.tx_packets, jb_lost=total.jb_lost + more.jb_lost,
                    jb_discarded=total.jb_discarded + more.jb_discarded, jb_empty=total.jb_empty + more.jb_empty)
