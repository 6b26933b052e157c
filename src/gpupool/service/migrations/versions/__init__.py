"""Migration scripts, applied in order by ``gpupool.service.db.migrate``."""
