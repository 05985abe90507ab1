-- Prefect's own database, next to mirrorflow's catalog in the same PostgreSQL server.
CREATE DATABASE prefect OWNER mirrorflow;
