from envpack.cli import main

main()
