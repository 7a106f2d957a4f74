"""The report's side in the package: reading run dirs (run_data) into tables of numbers (tables) and
per-item views (item_data), showing model text safely (worddiff), and starting the Streamlit app in
reports/ (launcher). It reads what stages wrote and never imports a stage or an engine."""
