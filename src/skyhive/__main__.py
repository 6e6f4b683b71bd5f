from skyhive.cli import main

main()
