"""Global Workspace router over specialised modules (arXiv 2503.01906).

A recurrent controller gates which module writes into a shared workspace at each step, chaining
operations until an Output module halts. The package holds the router (:class:`GatedRouter`,
:class:`Controller`, :func:`gate`), the modules of the paper's addition study and backend-driven
modules (an LLM step, a calculator, a verifier), and the study itself
(``reasonkit train-workspace``; :func:`run_study`). docs/workspaces.md has the design and results.

    >>> from reasonkit.workspaces import GatedRouter, Controller, InputModule, ShiftIncrement, Readout
    >>> router = GatedRouter([InputModule(), ShiftIncrement(), Readout()], Controller(40, 3),
    ...                      slots=2, width=40, controller_view=(1,))
"""

from __future__ import annotations

from reasonkit._lazy import lazy_exports

if __name__ != "reasonkit.workspaces":  # imported as bare `workspaces` from the clone root
    from reasonkit._shadow import defer_to_installed

    defer_to_installed(__name__, __file__)

_LAZY: dict[str, str] = {
    "run_study": "reasonkit.workspaces.command",
    "train_workspace_command": "reasonkit.workspaces.command",
    "WorkspaceConfig": "reasonkit.workspaces.config",
    "Controller": "reasonkit.workspaces.gating",
    "gate": "reasonkit.workspaces.gating",
    "reactive_controller": "reasonkit.workspaces.gating",
    "DigitEncoder": "reasonkit.workspaces.number_modules",
    "InputModule": "reasonkit.workspaces.number_modules",
    "LearnedShiftIncrement": "reasonkit.workspaces.number_modules",
    "MLPIncrement": "reasonkit.workspaces.number_modules",
    "Readout": "reasonkit.workspaces.number_modules",
    "ShiftIncrement": "reasonkit.workspaces.number_modules",
    "number_code": "reasonkit.workspaces.number_modules",
    "GatedRouter": "reasonkit.workspaces.router",
    "RouteResult": "reasonkit.workspaces.router",
    "RouterOutput": "reasonkit.workspaces.router",
    "WorkspaceModule": "reasonkit.workspaces.router",
    "WorkspaceState": "reasonkit.workspaces.state",
    "CalculatorModule": "reasonkit.workspaces.text_modules",
    "HashedNgramEncoder": "reasonkit.workspaces.text_modules",
    "LLMStepModule": "reasonkit.workspaces.text_modules",
    "PatternEncoder": "reasonkit.workspaces.text_modules",
    "TextEncoder": "reasonkit.workspaces.text_modules",
    "TextModule": "reasonkit.workspaces.text_modules",
    "TextOutput": "reasonkit.workspaces.text_modules",
    "VerifierModule": "reasonkit.workspaces.text_modules",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
