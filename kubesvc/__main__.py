from kubesvc.cli import main

raise SystemExit(main())
