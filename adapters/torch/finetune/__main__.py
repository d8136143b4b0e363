"""``python -m adapters.torch.finetune`` = the ``mpo-finetune`` command."""

from .cli import main

raise SystemExit(main())
