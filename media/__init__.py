"""Audio for softswitch: decode, resample, play, record, trim, speech."""
