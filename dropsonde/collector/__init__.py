"""The receiving side: a server that stores reports privately and a job that
publishes weekly aggregates, differentially private per site and week (``dropsonde collector ...``)."""
