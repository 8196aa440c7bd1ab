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

from reasonkit.workspaces.command import run_study, train_workspace_command
from reasonkit.workspaces.config import WorkspaceConfig
from reasonkit.workspaces.gating import Controller, gate, reactive_controller
from reasonkit.workspaces.number_modules import (
    DigitEncoder,
    InputModule,
    LearnedShiftIncrement,
    MLPIncrement,
    Readout,
    ShiftIncrement,
    number_code,
)
from reasonkit.workspaces.router import GatedRouter, RouteResult, RouterOutput, WorkspaceModule
from reasonkit.workspaces.state import WorkspaceState
from reasonkit.workspaces.text_modules import (
    CalculatorModule,
    HashedNgramEncoder,
    LLMStepModule,
    PatternEncoder,
    TextEncoder,
    TextModule,
    TextOutput,
    VerifierModule,
)

__all__ = [
    "CalculatorModule",
    "Controller",
    "DigitEncoder",
    "GatedRouter",
    "HashedNgramEncoder",
    "InputModule",
    "LLMStepModule",
    "LearnedShiftIncrement",
    "MLPIncrement",
    "PatternEncoder",
    "Readout",
    "RouteResult",
    "RouterOutput",
    "ShiftIncrement",
    "TextEncoder",
    "TextModule",
    "TextOutput",
    "VerifierModule",
    "WorkspaceConfig",
    "WorkspaceModule",
    "WorkspaceState",
    "gate",
    "number_code",
    "reactive_controller",
    "run_study",
    "train_workspace_command",
]
