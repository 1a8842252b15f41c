"""The runbook's steps: the only code that journals.

One module per step: :mod:`.create_schema`, :mod:`.copy` (with :mod:`.online_copy`),
:mod:`.sync`, :mod:`.verify`, :mod:`.cutover`, :mod:`.rollback_writes`, :mod:`.shift`,
:mod:`.rollback_traffic`, :mod:`.preflight` (and validate, attest), :mod:`.decommission`
(with :mod:`.decommission_check`),
:mod:`.rollback_schema`, :mod:`.rollback_infra`, :mod:`.status`. Each takes typed inputs, runs
under :meth:`.runbook.Runbook.step` (lock → phase rules → fresh evidence → intent → work →
outcome) and returns a typed result. Beside them: :mod:`.runbook` and :mod:`.requirements`
(the phase machine applied through the journal, and the evidence each step needs, how fresh,
checked by :mod:`.proofs` and :mod:`.proofs_decommission` when the step acts),
:mod:`.records` (every journal key and progress record, typed), :mod:`.facts` (evidence read
from the journal), :mod:`.wiring` (spec → the plain values mechanism takes), :mod:`.types`,
:mod:`.table` (:data:`STEPS`, :data:`ROLLBACKS`), :mod:`.plan` and :mod:`.run`.

Below ``steps/`` everything is mechanism (``pg/``, ``verify/``, ``traffic/``, ``metrics/``,
``checks/``, ``infra/``): plain values in, dataclasses out, no journal.
"""
