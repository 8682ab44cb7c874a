"""The target lifecycle: the one home of the state machine at the heart of Herald.

- `states`: the target's states and the table of moves allowed between them;
- `moves`: the one compare-and-set every writer goes through (`move`, `move_where`, `stamp`);
- `status`: a post's status derived from its targets', in one function;
- `dispatch`: the scheduler's batch of due targets → `queued`;
- `claim`: a worker's claim, `queued` → `publishing`, bringing what the publish needs;
- `outcome`: how a try ended, recorded with its attempt row and the post's status;
- `reconcile`: settling a try that ended without an outcome, never by posting blindly;
- `checkpoints`: what a try left on a platform for the next one.

Lock order, everywhere: the post row, then its targets.
"""

from herald_common.lifecycle.checkpoints import (
    CheckpointRejected,
    checkpoint_saver,
    forget_checkpoints,
)
from herald_common.lifecycle.claim import Claim, claim, publish_request, queued_due_at
from herald_common.lifecycle.dispatch import Queued, queue_due
from herald_common.lifecycle.moves import move, move_where, stamp
from herald_common.lifecycle.outcome import (
    Outcome,
    backoff_seconds,
    observe,
    put_back,
    record_outcome,
)
from herald_common.lifecycle.reconcile import reconcile, take_over
from herald_common.lifecycle.states import (
    ACCOUNT_DELETED,
    ACTIVE_TARGET_STATES,
    CANCELED_WITH_POST,
    DISPATCHABLE_TARGET_STATES,
    PENDING_STATES,
    REMOVED_FROM_POST,
    REVIVABLE_STATES,
    SENT_STATES,
    TRANSITIONS,
    IllegalMove,
    is_member,
)
from herald_common.lifecycle.status import (
    derive_post_status,
    drafts_only,
    lock_post,
    refresh_post_status,
    status_changes,
    store_post_status,
    target_statuses,
)

__all__ = [
    "ACCOUNT_DELETED",
    "ACTIVE_TARGET_STATES",
    "CANCELED_WITH_POST",
    "DISPATCHABLE_TARGET_STATES",
    "PENDING_STATES",
    "REMOVED_FROM_POST",
    "REVIVABLE_STATES",
    "SENT_STATES",
    "TRANSITIONS",
    "CheckpointRejected",
    "Claim",
    "IllegalMove",
    "Outcome",
    "Queued",
    "backoff_seconds",
    "checkpoint_saver",
    "claim",
    "derive_post_status",
    "drafts_only",
    "forget_checkpoints",
    "is_member",
    "lock_post",
    "move",
    "move_where",
    "observe",
    "publish_request",
    "put_back",
    "queue_due",
    "queued_due_at",
    "reconcile",
    "record_outcome",
    "refresh_post_status",
    "stamp",
    "status_changes",
    "store_post_status",
    "take_over",
    "target_statuses",
]
