from codeatlas.cli import main

main()
