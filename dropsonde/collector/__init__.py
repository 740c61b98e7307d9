"""The receiving side: a server that stores reports privately and a job that
publishes weekly k-anonymous aggregates (``dropsonde collector ...``)."""
