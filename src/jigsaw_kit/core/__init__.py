"""The core every layer stands on: config (+ the method registry), errors, atomic writes, metrics,
prompt templates, checkpoint folders, library versions, the competition's facts. Imports nothing above it."""
