-- TimescaleDB for the readings hypertable; pgcrypto is not needed: gen_random_uuid() is core in PG 13+.
CREATE EXTENSION IF NOT EXISTS timescaledb;
