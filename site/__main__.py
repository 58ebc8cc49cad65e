from brandvote.cli import main

raise SystemExit(main())
