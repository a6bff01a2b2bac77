"""Reports: the daily KPI rollups and the KPI report."""
