-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d):
-- Airflow's metadata database next to eventlake's (EVENTLAKE_AIRFLOW_DATABASE's default, "airflow").
CREATE DATABASE airflow OWNER eventlake;
