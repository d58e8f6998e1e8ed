from pad.cli import main

main()
