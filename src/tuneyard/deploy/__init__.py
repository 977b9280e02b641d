"""Running deployments: one model-server process per loaded deployment,
started, watched, deactivated and stopped by the manager in the API process."""
