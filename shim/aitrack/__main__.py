from aitrack.entry import main

main()
