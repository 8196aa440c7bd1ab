"""``python -m reasonkit.workspaces`` runs the addition study, the same as ``reasonkit train-workspace``."""

from reasonkit.workspaces.command import train_workspace_command

raise SystemExit(train_workspace_command())
