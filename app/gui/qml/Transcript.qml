// The conversation: a virtualized list of messages (app/gui/transcript_model.py is its model).
// Only delegates near the viewport exist; a streamed token changes the last row's tail only.
import QtQuick
import QtQuick.Controls.Basic

Rectangle {
    id: root
    objectName: "transcript"
    color: systemPalette.base

    property bool dark: false
    property bool allSelected: false   // Edit > Select All: every message is selected
    property int earlier: 0            // messages before the first row, behind "Show earlier"
    property real readingWidth: 760    // a comfortable line length for prose
    property bool following: true      // at the bottom: stay there while the answer grows
    // Messages being edited, by id: what is typed survives the list being rebuilt (an answer ends,
    // another chat is opened and this one again) and a delegate scrolled away and back.
    property var drafts: ({})
    // A selection dragged across messages (transcript.py sets it): from a position in the body of
    // row spanFirstRow to one in row spanLastRow, every message between whole. -1: none.
    property int spanFirstRow: -1
    property int spanFirstPos: 0
    property int spanLastRow: -1
    property int spanLastPos: 0
    signal spanChanged()

    readonly property color textColor: systemPalette.text
    readonly property color mutedColor: dark ? "#8b949e" : "#59636e"
    readonly property color userBubble: dark ? "#2b3340" : "#eaf1fb"
    readonly property color selectedTint: dark ? "#264f78" : "#cfe3ff"
    readonly property color accent: dark ? "#4493f8" : "#0969da"

    signal action(string name, string messageId, int number)
    signal link(string messageId, string url)
    signal editSubmitted(string messageId, string text)

    SystemPalette { id: systemPalette; colorGroup: SystemPalette.Active }

    // The current message (Up and Down move it; it shows its actions while the list has the
    // keyboard focus) follows where the view is put.
    function scrollToEnd() {
        following = true
        list.positionViewAtEnd()
        list.currentIndex = list.count - 1
    }
    function scrollToRow(row) {
        following = false  // before positioning: a height settling meanwhile must not pull to the end
        list.positionViewAtIndex(row, ListView.Beginning)
        list.currentIndex = row
        following = list.atYEnd
    }
    function selectSpan(firstRow, firstPos, lastRow, lastPos) {
        spanFirstRow = firstRow; spanFirstPos = firstPos
        spanLastRow = lastRow; spanLastPos = lastPos
        spanChanged()
    }
    function clearSpan() {
        if (spanFirstRow < 0)
            return
        spanFirstRow = -1; spanLastRow = -1
        spanChanged()
    }
    // The text cursor of a message put at a position, with nothing selected (where a drag that
    // came back into the message it began in selects from again).
    function placeCursor(row, position) {
        const item = list.itemAtIndex(row)
        if (item)
            item.placeCursor(position)
    }
    // The message under a point of the scene and the text position there: [row, position, whether
    // the point is on the message's text]. Above or below the list, the message at its edge;
    // between two messages or in the footer, the one above; in the header, the first.
    function textPositionAt(x, y) {
        const p = list.contentItem.mapFromItem(list, x, Math.max(0, Math.min(y, list.height - 1)))
        let row = list.indexAt(p.x, p.y)
        if (row < 0)
            row = list.indexAt(p.x, p.y - list.spacing - 1)
        if (row < 0 && list.footerItem && p.y >= list.footerItem.y)
            row = list.count - 1
        if (row < 0 && list.headerItem && p.y < list.headerItem.y + list.headerItem.height)
            row = 0
        const item = row < 0 ? null : list.itemAtIndex(row)
        return item ? item.textPositionAt(x, y) : null
    }
    // A drag selecting past the top or bottom edge scrolls the list (transcript.py calls it).
    function scrollBy(dy) {
        const top = list.originY
        const bottom = Math.max(top, list.originY + list.contentHeight - list.height)
        list.contentY = Math.max(top, Math.min(bottom, list.contentY + dy))
        following = list.atYEnd
    }
    function delegateAt(row) {
        list.positionViewAtIndex(row, ListView.Contain)
        list.forceLayout()
        return list.itemAtIndex(row)
    }

    ListView {
        id: list
        objectName: "messages"
        anchors.fill: parent
        model: transcriptModel
        cacheBuffer: 600
        spacing: 2
        boundsBehavior: Flickable.StopAtBounds
        keyNavigationEnabled: true
        activeFocusOnTab: true
        focus: true
        Accessible.role: Accessible.List
        Accessible.name: "Conversation transcript"
        ScrollBar.vertical: ScrollBar { Accessible.name: "Scroll the conversation" }

        // The reader scrolls: follow the end again only once they are back at it.
        onMovementStarted: root.following = false
        onMovementEnded: root.following = atYEnd
        onContentHeightChanged: if (root.following && !moving) positionViewAtEnd()
        onHeightChanged: if (root.following) positionViewAtEnd()

        header: Item {
            width: list.width
            height: root.earlier > 0 ? 48 : 12
            Button {
                objectName: "showEarlier"
                visible: root.earlier > 0
                anchors.centerIn: parent
                flat: true
                text: "Show " + root.earlier + " earlier messages"
                Accessible.name: text
                Accessible.ignored: !visible
                onClicked: root.action("more", "", 0)
            }
        }
        footer: Item { width: list.width; height: 16 }

        delegate: MessageDelegate {}
    }
}
