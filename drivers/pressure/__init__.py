"""Arterial-pressure sources (transducer, replay) and beat detection."""
