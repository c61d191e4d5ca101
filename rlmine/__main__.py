from rlmine.cli import main

main()
